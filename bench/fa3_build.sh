#!/usr/bin/env bash
# Builds FlashAttention-3's Hopper forward kernels as a wheel, on the GPU machine (it has nvcc; nothing can be
# downloaded there). Only what the LiveAvatar window attention needs is compiled: head dim 128, bf16 and e4m3,
# sm90, no backward / split / paged / softcap / varlen / local / append-KV / pack-GQA / cluster, which keeps the
# build to two kernel files (minutes, not hours).
#
#   FA3_SRC=.fa3/fa3src.tar.xz FA3_BUILD=.fa3b bash bench/fa3_build.sh      # -> $FA3_BUILD/hopper/dist/*.whl
#
# FA3_SRC: the tarball bench/fa3_source.sh packs (flash-attention's hopper/ folder and the pinned CUTLASS
# headers; none of it is committed). The build folder is incremental: a build cut short resumes where ninja
# stopped. Needs nvcc >= 12.3, PyTorch, ninja, packaging and wheel; on the H200 machine (nvcc 13.0, torch 2.11)
# it took 90 s with 16 cores. Install: pip install $FA3_BUILD/hopper/dist/flash_attn_3-*.whl
set -euo pipefail
SRC=${FA3_SRC:-.fa3/fa3src.tar.xz}
B=${FA3_BUILD:-.fa3b}
mkdir -p "$B"
[ -d "$B/hopper" ] || tar xJf "$SRC" -C "$B"
export FLASH_ATTENTION_FORCE_BUILD=TRUE
for f in BACKWARD SPLIT PAGEDKV APPENDKV LOCAL SOFTCAP PACKGQA FP16 VARLEN CLUSTER HDIM64 HDIM96 HDIM192 \
         HDIM256 SM80 HDIMDIFF64 HDIMDIFF192; do
  export FLASH_ATTENTION_DISABLE_$f=TRUE
done
export MAX_JOBS=${MAX_JOBS:-16} NVCC_THREADS=${NVCC_THREADS:-2}
cd "$B/hopper"
python3 setup.py -q bdist_wheel
ls -la dist
