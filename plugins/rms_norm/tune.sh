#!/usr/bin/env bash
# RMSNorm kernel variants: compile-time knobs of rms_norm_config.h, each built
# into its own library, then timed together (same rounds, interleaved) with torch.compile.
#   bash plugins/rms_norm/tune.sh build          builds build-tune/lib/NAME.so for sm_90 (no GPU needed:
#                                                build here, carry build-tune/lib to the GPU machine)
#   bash plugins/rms_norm/tune.sh test           the RMSNorm gpu tests against every variant
#   bash plugins/rms_norm/tune.sh bench [ARGS]   times every variant (extra `plugkit bench` ARGS)
#   TUNE_VARIANTS="default NAME ..." before any of them: only those variants
# Run `test` and `bench` after scripts/gpu_session.sh installed plugkit (GPU_STEPS="" skips its steps).
set -uo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
# Without network the TensorRT headers come from the carried wheel (see scripts/gpu_session.sh).
wheel=$(ls "$PWD"/.whl/kernel_lens-*.whl 2>/dev/null | head -n 1)
[[ -n $wheel ]] && export PLUGKIT_TENSORRT_HEADERS_WHEEL="$wheel"
variants=(  # name|CUDA flags (the knobs are in plugins/rms_norm/rms_norm_config.h)
  "default|"
  "no-reread|-DPLUGKIT_RMS_NORM_REREAD_MIN_ROW_BYTES=1073741824"
  "reread-no-hold|-DPLUGKIT_RMS_NORM_REREAD_HOLD_SCALE=0"
  "reread-8k|-DPLUGKIT_RMS_NORM_REREAD_MIN_ROW_BYTES=8192"
  "reread-rows-16|-DPLUGKIT_RMS_NORM_REREAD_MIN_ROWS=16"
  "reread-elements-8|-DPLUGKIT_RMS_NORM_REREAD_MAX_ELEMENTS=8"
  "reread-threads-256|-DPLUGKIT_RMS_NORM_REREAD_THREADS=256"
  "no-pipeline|-DPLUGKIT_RMS_NORM_PIPELINE_MIN_ROW_BYTES=1073741824"
  "pipe-long-grids|-DPLUGKIT_RMS_NORM_PIPELINE_MAX_ROWS=1000000"
  "pipe-blocks-3|-DPLUGKIT_RMS_NORM_PIPELINE_BLOCKS=3 -DPLUGKIT_RMS_NORM_PIPELINE_BYTES=229376"
  "pipe-bytes-128k|-DPLUGKIT_RMS_NORM_PIPELINE_BYTES=131072"
  "pipe-threads-512|-DPLUGKIT_RMS_NORM_PIPELINE_THREADS=512"
  "pipe-load-hint|-DPLUGKIT_RMS_NORM_PIPELINE_LOAD_HINT=1"
  "pipe-store-plain|-DPLUGKIT_RMS_NORM_PIPELINE_STORE_HINT=0"
  "pipe-min-8k|-DPLUGKIT_RMS_NORM_PIPELINE_MIN_ROW_BYTES=8192"
  "hints-always|-DPLUGKIT_RMS_NORM_PLAIN_MAX_ITEMS=0 -DPLUGKIT_RMS_NORM_WARP_PLAIN_MAX_ITEMS=0"
  "hints-never|-DPLUGKIT_RMS_NORM_PLAIN_MAX_ITEMS=16 -DPLUGKIT_RMS_NORM_WARP_PLAIN_MAX_ITEMS=64"
  "many-rows-block-256|-DPLUGKIT_RMS_NORM_MANY_ROWS_BLOCK_THREADS=256"
  "threads-64|-DPLUGKIT_RMS_NORM_THREADS=64"
  "threads-256|-DPLUGKIT_RMS_NORM_THREADS=256"
  "threads-512|-DPLUGKIT_RMS_NORM_THREADS=512"
  "stream-1023-256|-DPLUGKIT_RMS_NORM_STREAMING_VECTORS=1023 -DPLUGKIT_RMS_NORM_STREAMING_THREADS=256"
  "threads-512-plain4|-DPLUGKIT_RMS_NORM_THREADS=512 -DPLUGKIT_RMS_NORM_PLAIN_MAX_ITEMS=4"
  "threads-256-plain8|-DPLUGKIT_RMS_NORM_THREADS=256 -DPLUGKIT_RMS_NORM_PLAIN_MAX_ITEMS=8"
)
# TUNE_VARIANTS="default threads-512 ..." picks only those.
if [[ -n ${TUNE_VARIANTS:-} ]]; then
  picked=()
  for v in "${variants[@]}"; do [[ " $TUNE_VARIANTS " == *" ${v%%|*} "* ]] && picked+=("$v"); done
  variants=("${picked[@]}")
fi
names() { for v in "${variants[@]}"; do echo "${v%%|*}"; done; }

case "${1:-}" in
build)
  rm -rf build-tune/lib && mkdir -p build-tune/lib
  for v in "${variants[@]}"; do
    name="${v%%|*}" flags="${v#*|}" dir="build-tune/$name"
    ( cmake -S . -B "$dir" -G Ninja -DPLUGKIT_BUILD_HOST=OFF -DPLUGKIT_CUDA_ARCHITECTURES=90 \
        -DCMAKE_CUDA_FLAGS="$flags" >"$dir.log" 2>&1 && cmake --build "$dir" >>"$dir.log" 2>&1 &&
        cp "$dir/libplugkit_plugins.so" "build-tune/lib/$name.so" && echo "built $name" ) ||
      { echo "variant $name: build failed"; tail -5 "$dir.log"; } &
    (( $(jobs -r | wc -l) >= $(nproc) )) && wait -n
  done
  wait
  cp build-tune/lib/default.so build-tune/lib/default-again.so  # a second handle on the same code: the noise
  ;;
test)
  # One variant at a time: the tests of tensors of 2^31 elements take ~13 GB of GPU memory each.
  for name in $(names); do
    echo "$name: $(PLUGKIT_LIBRARY="$PWD/build-tune/lib/$name.so" python3 -m pytest -q -p no:cacheprovider -m gpu \
      tests/test_rms_norm.py 2>&1 | tail -n 1)"
  done
  ;;
bench)
  shift
  libraries=()  # the default first, then every other library in build-tune/lib (copies of older builds too)
  for lib in build-tune/lib/default.so $(ls build-tune/lib/*.so | grep -v '/default.so$'); do
    libraries+=(--library "$lib")
  done
  python3 -m plugkit bench rms_norm "${libraries[@]}" "$@"
  ;;
*)
  sed -n '2,8p' "$0"; exit 2 ;;
esac
