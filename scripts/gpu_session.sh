#!/usr/bin/env bash
# One GPU session on a machine without network: install the carried wheels,
# build the host and the plugin library, run the `gpu` tests and the benchmark.
#   bash scripts/gpu_session.sh [pytest args...]      (wheels in .whl/, output under $OUT or ./gpu-out)
#   GPU_STEPS="tests bench" (default) picks the steps after the install and build.
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
steps=" ${GPU_STEPS-tests bench} "
if [[ $steps == *" tests "* ]]; then
  log "gpu tests"
  python3 -m pytest -m gpu -q -p no:cacheprovider "$@" 2>&1 | tee "$out/pytest.txt" | tail -n 40
fi
if [[ $steps == *" bench "* ]]; then
  log "bench"
  python3 -m plugkit bench rms_norm 2>&1 | tee "$out/bench.txt"
fi
