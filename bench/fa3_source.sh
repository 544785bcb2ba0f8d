#!/usr/bin/env bash
# Packs the FlashAttention-3 sources that bench/fa3_build.sh compiles into one tarball (for a GPU machine that
# cannot download): the flash-attention repository's hopper/ folder, with its kernel instantiations trimmed to
# the two the engine uses (head dim 128, bf16 and e4m3, sm90), and the CUTLASS include/ tree at the commit the
# repository pins as its csrc/cutlass submodule. Nothing of it is committed here.
#
#   bash bench/fa3_source.sh FLASH_ATTENTION_GIT CUTLASS_GIT OUT.tar.xz
#
# Both arguments are git directories (clones or bare mirrors); the flash-attention one is read at HEAD.
set -euo pipefail
FA=$1 CUT=$2 OUT=$3
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
git -C "$FA" archive HEAD hopper | tar x -C "$T"
pin=$(git -C "$FA" ls-tree HEAD csrc/cutlass | awk '{print $3}')
mkdir -p "$T/csrc"
git -C "$CUT" archive --prefix=csrc/cutlass/ "$pin" include | tar x -C "$T"
find "$T/hopper/instantiations" -name '*.cu' ! -name 'flash_fwd_hdim128_bf16_sm90.cu' \
     ! -name 'flash_fwd_hdim128_e4m3_sm90.cu' -delete
rm -f "$T"/hopper/test_*.py "$T"/hopper/benchmark_*.py
echo "FlashAttention-3 (hopper/ of the flash-attention repository; CUTLASS ${pin})" > "$T/README.md"
# its setup.py runs `git submodule update` for csrc/cutlass; the include tree is already here, and the GPU
# machine may have no git
sed -i 's/^    subprocess.run(\["git", "submodule", "update", "--init", "..\/csrc\/cutlass"\])/    pass  # CUTLASS carried/' \
    "$T/hopper/setup.py"
tar cJf "$OUT" -C "$T" README.md hopper csrc
ls -la "$OUT"
