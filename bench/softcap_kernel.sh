#!/usr/bin/env bash
# Times Gemma 2's soft-capping and the tanh-GELU (Gemma's GeGLU gate, GPT-2's gelu_new) on the CPU
# (bench/softcap_kernel.c) at -O2 as the release build: this tree's attention.c and elementwise.c
# (tanh from cpu/fast_tanh.h) against the same files built with libm's tanhf (-DZT_TANH_LIBM, their
# zt_attention / zt_softcap / zt_gelu_tanh renamed *_libm, every other symbol of those objects made
# local), in one process.
#   bench/softcap_kernel.sh [THREADS] [gelu]   (gelu: the GELU row only)
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
flags=(-O2 -D_GNU_SOURCE -IKernels/include -IKernels/cpu)
for f in attention elementwise; do
    clang "${flags[@]}" -DZT_TANH_LIBM -c "Kernels/cpu/$f.c" -o "$out/$f.o"
done
objcopy --redefine-sym zt_attention=zt_attention_libm -G zt_attention_libm "$out/attention.o" "$out/attention_libm.o"
objcopy --redefine-sym zt_softcap=zt_softcap_libm --redefine-sym zt_gelu_tanh=zt_gelu_tanh_libm -G zt_softcap_libm -G zt_gelu_tanh_libm \
    "$out/elementwise.o" "$out/elementwise_libm.o"
clang "${flags[@]}" bench/softcap_kernel.c Kernels/cpu/attention.c Kernels/cpu/elementwise.c Kernels/cpu/threads.c \
    "$out/attention_libm.o" "$out/elementwise_libm.o" -o "$out/softcap_kernel" -lpthread -lm
"$out/softcap_kernel" "${1:-$(nproc)}" "${@:2}"
