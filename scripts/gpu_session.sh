#!/usr/bin/env bash
# One GPU session on a machine without network: install the carried wheels, build the host and
# the plugin library, then the steps asked for, each teed to a file under $OUT (or ./gpu-out):
#   bash scripts/gpu_session.sh [pytest args for the tests step...]
#   GPU_STEPS="tests sanitize bench scaffold triton" (the default) picks the steps after the install and build:
#     tests     every `gpu` test                                         -> pytest.txt
#     sanitize  compute-sanitizer memcheck over every plugin's GPU test cases with torch's caching
#               allocator off (it hides out-of-bounds accesses), racecheck once  -> sanitizer.txt
#     scaffold  freshly scaffolded ops built and their generated tests run; with bench also
#               timed against the template targets (scripts/gpu_scaffold_check.py)  -> scaffold.txt
#     triton    Triton plugins built ahead of time, tested, memchecked, timed (scripts/gpu_triton_check.py)  -> triton.txt
#     bench     `plugkit bench` of every shipped plugin, tactics and enqueue overhead, the Llama
#               example's table, and RMSNorm against $OLD_LIBRARY (a library built at an earlier
#               commit, carried in an ignored folder) when that is set  -> bench.txt
#   The GPU tests run beside the scaffolded ops' build and tests (when they are not timed); the
#   sanitizer after them; timings afterwards, one at a time. Steps can be split over device calls
#   on a warm machine (the build is kept): GPU_STEPS="tests sanitize", then "bench scaffold triton".
#   GPU_DEADLINE (s, default 570) bounds the whole run: each step gets what is left, so a run that
#   fits one device call leaves its files under $OUT instead of being cut off mid-step.
#   BENCH_OPS overrides the plugins benchmarked; BENCH_ARGS is added to each `plugkit bench`.
set -uo pipefail
out="${OUT:-$PWD/gpu-out}"
mkdir -p "$out"
started=$(date +%s)
deadline=${GPU_DEADLINE:-570}
log() { echo "== [$(( $(date +%s) - started )) s] $*" | tee -a "$out/log"; }
# left N: seconds a step may take: N, or what is left before the deadline (at least 1).
left() { local rest=$(( deadline - ($(date +%s) - started) )); local want=$1
  (( rest < want )) && want=$rest; (( want < 1 )) && want=1; echo "$want"; }

python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
# No network here: the pinned header wheel travels in .whl/.
export PLUGKIT_TENSORRT_HEADERS_WHEEL="$(ls "$PWD"/.whl/kernel_lens-*.whl)"
arch="${PLUGKIT_CUDA_ARCHITECTURES:-90}"

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
python3 -m plugkit build --arch "$arch" 2>&1 | tail -n 12 | tee -a "$out/log"

steps=" ${GPU_STEPS-tests sanitize bench scaffold triton} "
has() { [[ $steps == *" $1 "* ]]; }

memcheck() { # memcheck NAME PYTEST-ARGS...: one plugin's GPU cases under memcheck
  local name=$1; shift
  [[ -e $1 ]] || { echo "--- memcheck $name: $1 missing"; return; }
  echo "--- memcheck $name: pytest $*"
  PYTORCH_NO_CUDA_MEMORY_CACHING=1 timeout "$(left "${SANITIZE_TOOL_TIMEOUT:-300}")" \
    compute-sanitizer --tool memcheck --print-limit 20 python3 -m pytest -q -p no:cacheprovider "$@" 2>&1 \
    | grep -E "ERROR SUMMARY|passed|failed|rror|Invalid|Program hit" | tail -n 25
}

sanitize() {
  # Each plugin's GPU cases; RMSNorm's 2^31-element and large cases and its kernel-choice profiling
  # and its CUDA-graph chain (capture cannot allocate with the caching allocator off) are left out;
  # they reach no kernel the other cases do not.
  memcheck rms_norm tests/test_rms_norm.py -m gpu \
    -k "not 2_to_the_31 and not large_fp16 and not launcher_picks and not launches_in_a_row"
  memcheck ctc_greedy_decoder tests/test_ctc_greedy_decoder.py -m gpu
  memcheck multi_scale_deformable_attention tests/test_multi_scale_deformable_attention.py -m gpu
  memcheck sdk tests/test_sdk_tactics.py tests/test_sdk_shapes.py -m gpu
  memcheck torch_ops tests/test_torch_ops_cuda.py -m gpu -k "not graph and not compile"
  echo "--- racecheck rms_norm (warp rows and block reductions)"
  timeout "$(left "${SANITIZE_TOOL_TIMEOUT:-300}")" compute-sanitizer --tool racecheck --print-limit 20 \
    python3 -m pytest -q -p no:cacheprovider -x tests/test_rms_norm.py -m gpu \
    -k "scale_in_another_dtype or row_pipeline or reread" 2>&1 \
    | grep -E "RACECHECK SUMMARY|ERROR SUMMARY|passed|failed|hazard" | tail -n 10
}

# ---- correctness: the GPU tests beside the scaffolded ops' build (CPU-bound), then the sanitizer
# (under memcheck the GPU is slow enough that sharing it would put the tests' timeouts at risk)
if has tests; then
  log "gpu tests (in the background)"
  ( timeout "$(left 400)" python3 -m pytest -m gpu -q -p no:cacheprovider -rfE "$@" > "$out/pytest.txt" 2>&1 ) &
fi
if has scaffold && ! has bench; then
  log "scaffolded ops: built and tested (in the background)"
  ( timeout "$(left 400)" python3 scripts/gpu_scaffold_check.py --arch "$arch" --no-bench > "$out/scaffold.txt" 2>&1 ) &
fi
wait
has tests && log "gpu tests: $(tail -n 1 "$out/pytest.txt")"
if has sanitize; then
  log "sanitizer"
  sanitize > "$out/sanitizer.txt" 2>&1
  grep -E "^--- |ERROR SUMMARY|RACECHECK SUMMARY" "$out/sanitizer.txt" | tee -a "$out/log"
fi

# ---- timings, one at a time
if has bench; then
  log "bench"
  {
    for op in ${BENCH_OPS:-rms_norm ctc_greedy_decoder multi_scale_deformable_attention}; do
      timeout "$(left 150)" python3 -m plugkit bench "$op" ${BENCH_ARGS:-}
    done
    for op in ${BENCH_TACTIC_OPS:-multi_scale_deformable_attention}; do
      timeout "$(left 90)" python3 -m plugkit bench "$op" --tactics ${BENCH_ARGS:-}
    done
    for op in ${BENCH_OVERHEAD_OPS:-rms_norm ctc_greedy_decoder multi_scale_deformable_attention}; do
      timeout "$(left 40)" python3 -m plugkit bench "$op" --overhead --iterations 500
    done
    timeout "$(left 120)" python3 examples/llama_rmsnorm.py
    if [[ -n ${OLD_LIBRARY:-} ]]; then
      timeout "$(left 120)" python3 -m plugkit bench rms_norm --library "$OLD_LIBRARY" \
        --library build/libplugkit_plugins.so ${BENCH_ARGS:-}
    fi
  } 2>&1 | tee -a "$out/bench.txt"
  if has scaffold; then
    log "scaffolded ops: built, tested, timed"
    timeout "$(left 400)" python3 scripts/gpu_scaffold_check.py --arch "$arch" --rounds 5 2>&1 \
      | tee "$out/scaffold.txt" | tail -n 40
  fi
fi
has scaffold && tail -n 4 "$out/scaffold.txt" | tee -a "$out/log"

if has triton; then
  log "triton"
  timeout "$(left 300)" python3 scripts/gpu_triton_check.py --arch "$arch" --sanitize --rounds 5 2>&1 \
    | tee "$out/triton.txt" | tail -n 40
fi
log "done"
