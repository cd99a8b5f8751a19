#!/usr/bin/env bash
# Build RMSNorm kernel variants (compile-time knobs in rms_norm_kernel.cu) and time each
# at a few shapes, in one GPU session, after scripts/gpu_session.sh installed plugkit.
#   bash scripts/tune_rms_norm.sh
set -uo pipefail
export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
export PLUGKIT_TENSORRT_HEADERS_WHEEL="$(ls "$PWD"/.whl/kernel_lens-*.whl)"
shapes=(--shapes '16384x8192;8192' --shapes '1024x65536;65536' --shapes '2048x32768;32768' --shapes '8x512x4096;4096')
variant() {  # name, CUDA flags
  local dir="build-tune-$1"
  cmake -S . -B "$dir" -G Ninja -DPLUGKIT_CUDA_ARCHITECTURES=90 -DCMAKE_CUDA_FLAGS="$2" >"$dir.log" 2>&1 &&
    cmake --build "$dir" >>"$dir.log" 2>&1 || { echo "variant $1: build failed"; tail -5 "$dir.log"; return; }
  echo "== variant $1 ($2)"
  python3 -m plugkit bench rms_norm --library "$dir/libplugkit_plugins.so" --no-baselines \
    --dtype float16 --dtype float32 "${shapes[@]}" 2>&1 | tail -n +4
}
variant default ""
variant persistent-4096 "-DPLUGKIT_RMS_NORM_PERSISTENT_VECTORS=4096"
variant threads-256 "-DPLUGKIT_RMS_NORM_THREADS=256"
