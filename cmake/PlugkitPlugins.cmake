# plugkit_add_plugin_library(NAME SOURCES src... [OUTPUT_NAME name])
#
# Builds a TensorRT plugin library (a shared library) from plugin sources that
# use the plugkit SDK. The library's entry points (getCreators, setLoggerFinder)
# are generated from the PLUGKIT_REGISTER_PLUGIN(Class) lines of the sources,
# so adding a plugin needs no edit here and nothing relies on static
# initializers. Only the entry points are exported; everything else is hidden.
# Kernels are built for PLUGKIT_CUDA_ARCHITECTURES. A source's folder that holds a kernel.py has a
# Triton kernel: `python -m plugkit.triton_aot` (PLUGKIT_PYTHON, else the Python3 interpreter found)
# compiles it for the same architectures, with no GPU, into a generated source of the library.

set(_PLUGKIT_CMAKE_DIR "${CMAKE_CURRENT_LIST_DIR}")

set(PLUGKIT_CUDA_ARCHITECTURES "75-real;80-real;86-real;89-real;90" CACHE STRING
  "CUDA architectures of plugin kernels (SASS for each, plus PTX for the highest so newer GPUs can JIT)")

function(plugkit_add_plugin_library name)
  cmake_parse_arguments(ARG "" "OUTPUT_NAME" "SOURCES" ${ARGN})
  if(NOT ARG_SOURCES)
    message(FATAL_ERROR "plugkit_add_plugin_library(${name}): no SOURCES given")
  endif()
  if(NOT TARGET plugkit::sdk)
    message(FATAL_ERROR "plugkit_add_plugin_library(${name}): target plugkit::sdk is missing; call find_package(plugkit)")
  endif()

  set(_classes "")
  foreach(_src IN LISTS ARG_SOURCES)
    get_filename_component(_abs "${_src}" ABSOLUTE)
    set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${_abs}")
    file(STRINGS "${_abs}" _lines REGEX "^[ \t]*PLUGKIT_REGISTER_PLUGIN[ \t]*\\(")
    foreach(_line IN LISTS _lines)
      if(_line MATCHES "PLUGKIT_REGISTER_PLUGIN[ \t]*\\([ \t]*([A-Za-z_][A-Za-z0-9_]*)[ \t]*\\)")
        if(CMAKE_MATCH_1 IN_LIST _classes)
          message(FATAL_ERROR "plugkit_add_plugin_library(${name}): ${CMAKE_MATCH_1} is registered twice (again in ${_src})")
        endif()
        list(APPEND _classes "${CMAKE_MATCH_1}")
      endif()
    endforeach()
  endforeach()
  list(SORT _classes)

  set(PLUGKIT_CREATOR_DECLARATIONS "")
  set(PLUGKIT_CREATOR_CALLS "")
  foreach(_class IN LISTS _classes)
    string(APPEND PLUGKIT_CREATOR_DECLARATIONS
      "extern \"C\" nvinfer1::IPluginCreatorInterface* plugkit_creator_${_class}();\n")
    string(APPEND PLUGKIT_CREATOR_CALLS "        plugkit_creator_${_class}(),\n")
  endforeach()
  set(PLUGKIT_LIBRARY_NAME "${name}")
  set(_entry "${CMAKE_CURRENT_BINARY_DIR}/${name}_entry.cpp")
  configure_file("${_PLUGKIT_CMAKE_DIR}/plugkit_entry.cpp.in" "${_entry}" @ONLY)

  # Plugin folders with a kernel.py hold Triton kernels: compiled ahead of time into generated
  # sources (cubins as byte arrays plus their launch) that join the library.
  set(_triton_sources "")
  set(_triton_includes "")
  set(_triton_dirs "")
  foreach(_src IN LISTS ARG_SOURCES)
    get_filename_component(_dir "${_src}" ABSOLUTE)
    get_filename_component(_dir "${_dir}" DIRECTORY)
    if(EXISTS "${_dir}/kernel.py" AND NOT _dir IN_LIST _triton_dirs)
      list(APPEND _triton_dirs "${_dir}")
    endif()
  endforeach()
  if(_triton_dirs)
    if(NOT PLUGKIT_PYTHON)
      find_package(Python3 COMPONENTS Interpreter REQUIRED)
      set(PLUGKIT_PYTHON "${Python3_EXECUTABLE}")
    endif()
    # plugkit's own python/ folder when building from its source tree; else the installed package.
    set(_pythonpath "$ENV{PYTHONPATH}")
    if(EXISTS "${_PLUGKIT_CMAKE_DIR}/../python/plugkit/triton_aot.py")
      get_filename_component(_own "${_PLUGKIT_CMAKE_DIR}/../python" ABSOLUTE)
      string(JOIN ":" _pythonpath "${_own}" $ENV{PYTHONPATH})
    endif()
  endif()
  foreach(_dir IN LISTS _triton_dirs)
    get_filename_component(_op "${_dir}" NAME)
    set(_out "${CMAKE_CURRENT_BINARY_DIR}/triton/${_op}")
    add_custom_command(
      OUTPUT "${_out}/${_op}_triton.cpp" "${_out}/${_op}_triton.h"
      COMMAND "${CMAKE_COMMAND}" -E env "PYTHONPATH=${_pythonpath}"
              "${PLUGKIT_PYTHON}" -m plugkit.triton_aot "${_dir}" --arch "${PLUGKIT_CUDA_ARCHITECTURES}" --out "${_out}"
      DEPENDS "${_dir}/kernel.py" "${_dir}/op.py"
      COMMENT "plugkit: compiling the Triton kernel of ${_op} for ${PLUGKIT_CUDA_ARCHITECTURES}"
      VERBATIM)
    list(APPEND _triton_sources "${_out}/${_op}_triton.cpp" "${_out}/${_op}_triton.h")
    list(APPEND _triton_includes "${_out}")
  endforeach()

  add_library(${name} SHARED ${ARG_SOURCES} ${_triton_sources} "${_entry}")
  target_include_directories(${name} PRIVATE ${_triton_includes})
  target_link_libraries(${name} PRIVATE plugkit::sdk)
  target_compile_features(${name} PRIVATE cxx_std_17 cuda_std_17)
  set_target_properties(${name} PROPERTIES
    CUDA_ARCHITECTURES "${PLUGKIT_CUDA_ARCHITECTURES}"
    CUDA_RUNTIME_LIBRARY Static
    CXX_VISIBILITY_PRESET hidden
    CUDA_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON
    POSITION_INDEPENDENT_CODE ON)
  if(ARG_OUTPUT_NAME)
    set_target_properties(${name} PROPERTIES OUTPUT_NAME "${ARG_OUTPUT_NAME}")
  endif()
  if(CMAKE_SYSTEM_NAME STREQUAL "Linux")
    # Fail at link time, not at dlopen time, on a missing symbol; keep the static CUDA runtime private.
    target_link_options(${name} PRIVATE "LINKER:--no-undefined" "LINKER:--exclude-libs,ALL")
  endif()
  target_compile_options(${name} PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:--expt-relaxed-constexpr>)
  list(LENGTH _classes _count)
  message(STATUS "plugkit: ${name} registers ${_count} plugin(s): ${_classes}")
endfunction()
