# FindTensorRT: TensorRT's public headers (and its libraries, when installed).
#
# The C++ build needs only TensorRT's headers (NvInfer*.h). They are looked for,
# in this order:
#   1. TensorRT_ROOT or TENSORRT_INCLUDE_DIR (CMake variables or environment variables);
#   2. TensorRT's own CMake package (TensorRT 11 tar/zip packages ship one:
#      find_package(TensorRT-Enterprise)), preferred when present;
#   3. the system include paths (a deb/rpm install puts NvInfer.h in /usr/include/...);
#   4. the TensorRT 10.14 headers vendored by the PyPI wheel kernel-lens==2.0.1,
#      pinned by sha256: a local wheel given by PLUGKIT_TENSORRT_HEADERS_WHEEL
#      (variable or environment), else `pip download`, unpacked into the build tree.
# Headers older than 10.0 are refused.
#
# Result: TensorRT_FOUND, TensorRT_INCLUDE_DIR, TensorRT_VERSION (from NvInferVersion.h),
# TensorRT_HEADER_SOURCE (which of the above), the target TensorRT::headers, and
# TensorRT::nvinfer / TensorRT::nvonnxparser with TensorRT_LIBRARIES_FOUND when the
# libraries exist.

include(FindPackageHandleStandardArgs)

set(_plugkit_trt_wheel_version "2.0.1")
set(_plugkit_trt_wheel_sha256 "07cc714e8b5e7f34b672f7c7fad93febe7c747be5837ba276b1527370134ffe0")
set(_plugkit_trt_wheel_name "kernel_lens-${_plugkit_trt_wheel_version}-py3-none-any.whl")

foreach(_var TensorRT_ROOT TENSORRT_INCLUDE_DIR PLUGKIT_TENSORRT_HEADERS_WHEEL)
  if(NOT ${_var} AND DEFINED ENV{${_var}})
    set(${_var} "$ENV{${_var}}")
  endif()
endforeach()

function(_plugkit_trt_version include_dir out_var)
  file(STRINGS "${include_dir}/NvInferVersion.h" _lines REGEX "#define (TRT|NV_TENSORRT)_(MAJOR|MINOR|PATCH)[A-Z_]* +[0-9]+")
  foreach(_part MAJOR MINOR PATCH)
    set(_value "")
    foreach(_line IN LISTS _lines)
      if(_line MATCHES "#define (TRT_${_part}_[A-Z]+|NV_TENSORRT_${_part}) +([0-9]+)")
        set(_value "${CMAKE_MATCH_2}")
        break()
      endif()
    endforeach()
    list(APPEND _version "${_value}")
  endforeach()
  list(JOIN _version "." _version)
  set(${out_var} "${_version}" PARENT_SCOPE)
endfunction()

unset(_trt_include)
unset(_trt_source)

# 1. An explicit location.
if(TENSORRT_INCLUDE_DIR)
  if(NOT EXISTS "${TENSORRT_INCLUDE_DIR}/NvInferVersion.h")
    message(FATAL_ERROR "TENSORRT_INCLUDE_DIR=${TENSORRT_INCLUDE_DIR} holds no NvInferVersion.h; "
      "point it at the folder that contains NvInfer.h")
  endif()
  set(_trt_include "${TENSORRT_INCLUDE_DIR}")
  set(_trt_source "TENSORRT_INCLUDE_DIR")
elseif(TensorRT_ROOT)
  find_path(_trt_include NvInferVersion.h PATHS "${TensorRT_ROOT}" PATH_SUFFIXES include NO_DEFAULT_PATH NO_CACHE)
  if(NOT _trt_include)
    message(FATAL_ERROR "TensorRT_ROOT=${TensorRT_ROOT} has no include/NvInferVersion.h")
  endif()
  set(_trt_source "TensorRT_ROOT")
endif()

# 2. TensorRT's own package config (TensorRT 11).
if(NOT _trt_include)
  find_package(TensorRT-Enterprise CONFIG QUIET)
  if(TensorRT-Enterprise_FOUND)
    foreach(_target TensorRT::nvinfer TensorRT-Enterprise::nvinfer TensorRT::TensorRT)
      if(TARGET ${_target})
        get_target_property(_dirs ${_target} INTERFACE_INCLUDE_DIRECTORIES)
        foreach(_dir IN LISTS _dirs)
          if(EXISTS "${_dir}/NvInferVersion.h")
            set(_trt_include "${_dir}")
            set(_trt_source "TensorRT-Enterprise package (${TensorRT-Enterprise_DIR})")
            set(_trt_config_target ${_target})
            break()
          endif()
        endforeach()
      endif()
    endforeach()
  endif()
endif()

# 3. The system include paths.
if(NOT _trt_include)
  find_path(_trt_include NvInferVersion.h PATH_SUFFIXES include include/tensorrt NO_CACHE)
  if(_trt_include)
    set(_trt_source "system (${_trt_include})")
  endif()
endif()

# 4. The pinned header wheel, unpacked into the build tree.
if(NOT _trt_include)
  set(_dir "${CMAKE_BINARY_DIR}/_deps/tensorrt-headers")
  set(_unpacked "${_dir}/kernel_lens/include/tensorrt")
  if(NOT EXISTS "${_unpacked}/NvInferVersion.h")
    set(_wheel "${PLUGKIT_TENSORRT_HEADERS_WHEEL}")
    if(NOT _wheel)
      set(_wheel "${_dir}/${_plugkit_trt_wheel_name}")
      if(NOT EXISTS "${_wheel}")
        find_package(Python3 COMPONENTS Interpreter QUIET)
        if(NOT Python3_Interpreter_FOUND)
          message(FATAL_ERROR "No TensorRT headers found and no Python to fetch them with. "
            "Set TENSORRT_INCLUDE_DIR, TensorRT_ROOT, or PLUGKIT_TENSORRT_HEADERS_WHEEL=/path/to/${_plugkit_trt_wheel_name}")
        endif()
        message(STATUS "TensorRT headers: fetching kernel-lens==${_plugkit_trt_wheel_version} with pip")
        # pip's isolated build environments hide the interpreter's own pip (via PYTHONPATH);
        # unhide it, so that `pip install .` can fetch the headers too.
        execute_process(
          COMMAND "${CMAKE_COMMAND}" -E env --unset=PYTHONPATH --unset=PYTHONNOUSERSITE
                  "${Python3_EXECUTABLE}" -m pip download --quiet --no-deps --only-binary=:all:
                  "kernel-lens==${_plugkit_trt_wheel_version}" --dest "${_dir}"
          RESULT_VARIABLE _rc ERROR_VARIABLE _err)
        if(NOT _rc EQUAL 0 OR NOT EXISTS "${_wheel}")
          message(FATAL_ERROR "No TensorRT headers found, and `pip download kernel-lens==${_plugkit_trt_wheel_version}` "
            "failed:\n${_err}\nSet TENSORRT_INCLUDE_DIR or TensorRT_ROOT to a TensorRT install, or "
            "PLUGKIT_TENSORRT_HEADERS_WHEEL to a downloaded ${_plugkit_trt_wheel_name}.")
        endif()
      endif()
    endif()
    if(NOT EXISTS "${_wheel}")
      message(FATAL_ERROR "PLUGKIT_TENSORRT_HEADERS_WHEEL=${_wheel} does not exist")
    endif()
    file(SHA256 "${_wheel}" _sha)
    if(NOT _sha STREQUAL _plugkit_trt_wheel_sha256)
      message(FATAL_ERROR "${_wheel} has sha256 ${_sha}; expected ${_plugkit_trt_wheel_sha256} "
        "(kernel-lens==${_plugkit_trt_wheel_version}). Refusing unpinned headers.")
    endif()
    file(ARCHIVE_EXTRACT INPUT "${_wheel}" DESTINATION "${_dir}" PATTERNS "kernel_lens/include/tensorrt/*")
  endif()
  set(_trt_include "${_unpacked}")
  set(_trt_source "kernel-lens==${_plugkit_trt_wheel_version} wheel (pinned, ${_dir})")
endif()

set(TensorRT_INCLUDE_DIR "${_trt_include}" CACHE PATH "TensorRT headers" FORCE)
set(TensorRT_HEADER_SOURCE "${_trt_source}" CACHE STRING "where the TensorRT headers came from" FORCE)
_plugkit_trt_version("${TensorRT_INCLUDE_DIR}" TensorRT_VERSION)
if(TensorRT_VERSION VERSION_LESS 10.0)
  message(FATAL_ERROR "TensorRT headers ${TensorRT_VERSION} in ${TensorRT_INCLUDE_DIR} are older than 10.0; "
    "plugkit needs IPluginV3 (TensorRT 10 or newer). Point TENSORRT_INCLUDE_DIR at newer headers.")
endif()

# The libraries, when TensorRT is installed (examples and the C++ loader link them).
set(_trt_lib_hints "${TensorRT_ROOT}" "${TensorRT_INCLUDE_DIR}/..")
find_library(TensorRT_nvinfer_LIBRARY NAMES nvinfer nvinfer_10 HINTS ${_trt_lib_hints} PATH_SUFFIXES lib lib64 lib/x86_64-linux-gnu)
find_library(TensorRT_nvonnxparser_LIBRARY NAMES nvonnxparser nvonnxparser_10 HINTS ${_trt_lib_hints} PATH_SUFFIXES lib lib64 lib/x86_64-linux-gnu)
find_path(TensorRT_ONNXPARSER_INCLUDE_DIR NvOnnxParser.h HINTS "${TensorRT_INCLUDE_DIR}" NO_CACHE)

find_package_handle_standard_args(TensorRT REQUIRED_VARS TensorRT_INCLUDE_DIR VERSION_VAR TensorRT_VERSION)

if(TensorRT_FOUND AND NOT TARGET TensorRT::headers)
  add_library(TensorRT::headers INTERFACE IMPORTED)
  set_target_properties(TensorRT::headers PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${TensorRT_INCLUDE_DIR}")
  if(TensorRT_nvinfer_LIBRARY AND NOT TARGET TensorRT::nvinfer)
    add_library(TensorRT::nvinfer UNKNOWN IMPORTED)
    set_target_properties(TensorRT::nvinfer PROPERTIES IMPORTED_LOCATION "${TensorRT_nvinfer_LIBRARY}"
      INTERFACE_INCLUDE_DIRECTORIES "${TensorRT_INCLUDE_DIR}")
  endif()
  if(TensorRT_nvonnxparser_LIBRARY AND NOT TARGET TensorRT::nvonnxparser)
    add_library(TensorRT::nvonnxparser UNKNOWN IMPORTED)
    set_target_properties(TensorRT::nvonnxparser PROPERTIES IMPORTED_LOCATION "${TensorRT_nvonnxparser_LIBRARY}"
      INTERFACE_INCLUDE_DIRECTORIES "${TensorRT_INCLUDE_DIR}")
  endif()
  if(TARGET TensorRT::nvinfer)
    set(TensorRT_LIBRARIES_FOUND TRUE)
  else()
    set(TensorRT_LIBRARIES_FOUND FALSE)
  endif()
  if(NOT TensorRT_FIND_QUIETLY)
    message(STATUS "TensorRT headers ${TensorRT_VERSION} from ${TensorRT_HEADER_SOURCE}: ${TensorRT_INCLUDE_DIR}")
    if(NOT TensorRT_LIBRARIES_FOUND)
      message(STATUS "TensorRT libraries not found: building plugins only (they need no TensorRT library)")
    endif()
  endif()
endif()
