#!/usr/bin/env bash
# One GPU session on a machine without network: install the carried wheels, build the host and
# the plugin library, then the steps asked for, each teed to a file under $OUT (or ./gpu-out):
#   bash scripts/gpu_session.sh [pytest args for the tests step...]
#   GPU_STEPS="tests sanitize bench scaffold triton" (the default) picks the steps after the install and build:
#     tests     every `gpu` test                                         -> pytest.txt
#     sanitize  compute-sanitizer memcheck over every plugin's GPU test cases with torch's caching
#               allocator off (it hides out-of-bounds accesses), racecheck once  -> sanitizer.txt
#     bench     `plugkit bench` of every shipped plugin, tactics and enqueue overhead  -> bench.txt
#     scaffold  freshly scaffolded ops built, tested and timed (scripts/gpu_scaffold_check.py)  -> scaffold.txt
#     triton    Triton plugins built ahead of time, tested, memchecked, timed (scripts/gpu_triton_check.py)  -> triton.txt
#   BENCH_OPS overrides the plugins benchmarked; SANITIZE_TOOL_TIMEOUT bounds each sanitizer run (s).
set -uo pipefail
out="${OUT:-$PWD/gpu-out}"
mkdir -p "$out"
log() { echo "== $*" | tee -a "$out/log"; }

python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
# No network here: the pinned header wheel travels in .whl/.
export PLUGKIT_TENSORRT_HEADERS_WHEEL="$(ls "$PWD"/.whl/kernel_lens-*.whl)"

log "device"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | tee -a "$out/log"
log "install (editable, no build isolation)"
if ! python3 -m pip install -q --no-build-isolation --no-deps -e . >>"$out/log" 2>&1; then
  log "pip -e failed; building the host with CMake directly"
  cmake -S . -B build-host -G Ninja -DPLUGKIT_BUILD_PLUGINS=OFF -DPLUGKIT_BUILD_HOST=ON \
    -Dpybind11_DIR="$(python3 -c 'import pybind11; print(pybind11.get_cmake_dir())')" \
    -DPLUGKIT_HOST_OUTPUT_DIR="$PWD/python/plugkit" >>"$out/log" 2>&1 && cmake --build build-host >>"$out/log" 2>&1 || exit 1
  export PYTHONPATH="$PWD/python:$PYTHONPATH"
fi
log "build"
python3 -m plugkit build --arch "${PLUGKIT_CUDA_ARCHITECTURES:-90}" 2>&1 | tail -n 12 | tee -a "$out/log"

steps=" ${GPU_STEPS-tests sanitize bench scaffold triton} "
if [[ $steps == *" tests "* ]]; then
  log "gpu tests"
  python3 -m pytest -m gpu -q -p no:cacheprovider "$@" 2>&1 | tee "$out/pytest.txt" | tail -n 40
fi

if [[ $steps == *" sanitize "* ]]; then
  log "sanitizer"
  # Each plugin's GPU cases; RMSNorm's 2^31-element and large cases and its kernel-choice profiling
  # and its CUDA-graph chain (capture cannot allocate with the caching allocator off) are left out;
  # they reach no kernel the other cases do not.
  sets=(
    "rms_norm::tests/test_rms_norm.py -m gpu -k 'not 2_to_the_31 and not large_fp16 and not launcher_picks and not launches_in_a_row'"
    "ctc_greedy_decoder::tests/test_ctc_greedy_decoder.py -m gpu"
    "multi_scale_deformable_attention::tests/test_multi_scale_deformable_attention.py -m gpu"
    "sdk::tests/test_sdk_tactics.py tests/test_sdk_shapes.py -m gpu"
    "torch_ops::tests/test_torch_ops_cuda.py -m gpu -k 'not graph and not compile'"
  )
  export PYTORCH_NO_CUDA_MEMORY_CACHING=1
  for entry in "${sets[@]}"; do
    name=${entry%%::*}
    eval "args=(${entry#*::})"
    [[ -e ${args[0]} ]] || { echo "$name: ${args[0]} missing" | tee -a "$out/sanitizer.txt"; continue; }
    echo "--- memcheck $name: pytest ${entry#*::}" | tee -a "$out/sanitizer.txt"
    timeout "${SANITIZE_TOOL_TIMEOUT:-240}" compute-sanitizer --tool memcheck --print-limit 20 \
      python3 -m pytest -q -p no:cacheprovider "${args[@]}" 2>&1 \
      | grep -E "ERROR SUMMARY|passed|failed|rror|Invalid|Program hit" | tail -n 25 | tee -a "$out/sanitizer.txt"
  done
  echo "--- racecheck rms_norm (warp rows and block reductions)" | tee -a "$out/sanitizer.txt"
  timeout "${SANITIZE_TOOL_TIMEOUT:-240}" compute-sanitizer --tool racecheck --print-limit 20 \
    python3 -m pytest -q -p no:cacheprovider -x tests/test_rms_norm.py -m gpu -k "scale_in_another_dtype or row_pipeline or reread" 2>&1 \
    | grep -E "RACECHECK SUMMARY|ERROR SUMMARY|passed|failed|hazard" | tail -n 10 | tee -a "$out/sanitizer.txt"
  unset PYTORCH_NO_CUDA_MEMORY_CACHING
fi

if [[ $steps == *" bench "* ]]; then
  log "bench"
  for op in ${BENCH_OPS:-rms_norm ctc_greedy_decoder multi_scale_deformable_attention}; do
    python3 -m plugkit bench "$op" ${BENCH_ARGS:-} 2>&1 | tee -a "$out/bench.txt"
  done
  for op in ${BENCH_TACTIC_OPS:-multi_scale_deformable_attention}; do
    python3 -m plugkit bench "$op" --tactics 2>&1 | tee -a "$out/bench.txt"
  done
  for op in ${BENCH_OVERHEAD_OPS:-rms_norm ctc_greedy_decoder multi_scale_deformable_attention}; do
    python3 -m plugkit bench "$op" --overhead --iterations 500 2>&1 | tee -a "$out/bench.txt"
  done
fi

if [[ $steps == *" scaffold "* ]]; then
  log "scaffold"
  python3 scripts/gpu_scaffold_check.py --arch "${PLUGKIT_CUDA_ARCHITECTURES:-90}" 2>&1 | tee "$out/scaffold.txt" | tail -n 40
fi

if [[ $steps == *" triton "* ]]; then
  log "triton"
  python3 scripts/gpu_triton_check.py --arch "${PLUGKIT_CUDA_ARCHITECTURES:-90}" --sanitize 2>&1 | tee "$out/triton.txt" | tail -n 40
fi
