#!/usr/bin/env bash
# Packages the `zotune` binary for a GPU machine that has no Swift toolchain: a release build with
# the Swift runtime linked statically, plus the OpenBLAS shared library it loads, into
# bench/device/dist/ (git-ignored), stripped, and the same packed as bench/device/dist/zotune.tar.xz
# (≈ 21 MB: what travels to a GPU machine, whose copy of the working tree is limited to 64 MiB; the
# loose files are ≈ 100 MB). On the GPU machine bench/device/run.sh unpacks it, or by hand:
#   python3 -c "import tarfile; tarfile.open('bench/device/dist/zotune.tar.xz').extractall('bench/device/dist')"
#   Kernels/build.sh && LD_LIBRARY_PATH=bench/device/dist bench/device/dist/zotune devices --device cuda
set -euo pipefail
cd "$(dirname "$0")/../.."
log=$(mktemp)
swift build -c release --static-swift-stdlib --product zotune > "$log" 2>&1 \
    || { tail -n 30 "$log" >&2; echo "package.sh: the release build failed (above)" >&2; exit 1; }
rm -f "$log"
dist=bench/device/dist
rm -rf "$dist" && mkdir -p "$dist"
cp .build/release/zotune "$dist/"
# The OpenBLAS the binary links (and its gfortran runtime), resolved through ldd.
ldd .build/release/zotune | awk '/openblas|gfortran|quadmath/ {print $3}' | while read -r lib; do
    cp -L "$lib" "$dist/"
done
# The name the binary asks for (libopenblas.so.0) must exist in dist.
for f in "$dist"/libopenblas*.so*; do [ -e "$dist/libopenblas.so.0" ] || cp "$f" "$dist/libopenblas.so.0"; done
strip "$dist/zotune"
tar -C "$dist" -cJf "$dist/zotune.tar.xz.tmp" zotune $(cd "$dist" && ls lib*)
mv "$dist/zotune.tar.xz.tmp" "$dist/zotune.tar.xz"
ls -la "$dist"
