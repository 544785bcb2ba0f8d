#!/usr/bin/env bash
# Builds FlashAttention-3's Hopper forward kernels as a wheel, on the GPU machine (it has nvcc; nothing can be
# downloaded there). Only what the LiveAvatar window attention needs is compiled: head dim 128, bf16 and e4m3,
# sm90, no backward / split / paged / softcap / varlen / local / append-KV / pack-GQA / cluster, which keeps the
# build to two kernel files (minutes, not hours).
#
#   FA3_SRC=.fa3/fa3src.tar.xz FA3_BUILD=.fa3b bash bench/fa3_build.sh      # -> $FA3_BUILD/hopper/dist/*.whl
#
# FA3_SRC: a tarball of the flash-attention repository's hopper/ folder (instantiations trimmed to the two kept
# files) and the CUTLASS include/ tree at the commit that repository pins, under csrc/cutlass/ (made here from
# fetched snapshots; none of it is committed). The build folder is incremental: a call cut short by its time
# limit resumes where ninja stopped.
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
