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

// Elementwise loops whose output may be exactly one of their inputs (in place: the forward's
// residual adds, SwiGLU into up, activations) but never a shifted view of one. Left alone, clang
// guards the vector body with a runtime overlap check that out == x fails, so in-place calls ran
// the scalar loop (SwiGLU's 4% of a SmolLM2 forward was mostly that). Each iteration reads index i
// before it writes index i only, so the vector body is asserted safe; it computes the same
// per-element operations as the scalar loop, so the bits do not change.
#if defined(__clang__)
#define ZT_ELEMENTWISE _Pragma("clang loop vectorize(assume_safety)")
#else
#define ZT_ELEMENTWISE
#endif

#endif
