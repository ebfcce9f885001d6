// Per-ISA builds of the CPU kernels' hot loops. SwiftPM compiles C for baseline x86-64 (SSE2, no
// FMA) and a library cannot pass -march flags, so the range functions of the transformer ops are
// cloned for x86-64-v3 (AVX2 + FMA) and picked once at load time by the dynamic linker (ifunc).
// perturb.c, whose numerics must not depend on the ISA, dispatches by hand instead.
#ifndef ZT_CPU_ISA_H
#define ZT_CPU_ISA_H

#if defined(__x86_64__) && defined(__clang__) && defined(__linux__)
#define ZT_ISA_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define ZT_ISA_CLONES
#endif

#endif
