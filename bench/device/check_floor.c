// Included by check.c: the speed floor of the bf16 perturbation passes, from their instruction limit.
//
// f32 perturb / restore_update are pure streams and must reach FLOOR_STREAM (70%) of the copy
// bandwidth. In bf16 they move half the bytes for the same arithmetic and are instruction-bound: a
// thread makes one Philox block (4 elements) per pass of its loop, and that loop's hot path (vector
// load and store, no slow-path call) compiled for sm_90 is 285 SASS instructions for perturb and
// 295 for restore_update (`cuobjdump -sass Kernels/build/cuda/perturb.o`, stream_kernel<0|1, bf16,
// bf16>, counted between the loop head and its back branch, without the sqrt/division slow paths):
// Philox-10 ≈ 90 (19 IMAD.WIDE, the xors and key bumps), Box–Muller ≈ 120 (two logs, each with a
// division, two square roots, two sin/cos polynomials), the FMA(s) and the bit-exact rounding to
// bf16 ≈ 40, loop and bounds ≈ 35. A Hopper SM issues one warp instruction per clock in each of its
// 4 sub-partitions; the ALU pipe (LOP3, SHF, ISETP, IADD3, LEA, FSEL, I2FP: 117 and 121 of them)
// takes 2 clocks per warp instruction, 304 and 310 clocks if the 35 and 34 VIADDs go there too. So a
// warp's 128 elements cost at least 310 clocks (restore_update, the slower; perturb 304), and the
// limit is SMs × 4 × clock × 128 / 310 elements/s, 4 bytes each (bf16 read and written): on an
// H100 SXM (132 SMs, 1980 MHz) 1.73 TB/s, 58% of its ≈ 3.0 TB/s copy (43% of an H200's 4.3 TB/s),
// so the copy floor would fail for the wrong reason. The bf16 floor is 85% of that limit, capped by
// the copy floor: the 15% is issue slots lost to dependency stalls and a clock under its peak under
// load. Recount when the stream kernels or numerics.cuh change.
#define BF16_CLOCKS_PER_WARP_BLOCK 310.0
#define FLOOR_INSTR 0.85

static double g_bf16_floor = FLOOR_STREAM;  // share of the copy bandwidth, for the summary line

// SM count and peak SM clock of device 0 from the driver (libcuda, already loaded by the CUDA
// library); ZT_SM_CLOCK_MHZ (check.sh: nvidia-smi's clocks.max.sm) stands in for a driver that
// reports no clock. The dry run uses the H100's figures to show the arithmetic.
static void bf16_stream_floor(double copy_gbs) {
    int sms = 0, khz = 0;
    void *cu = g_dry ? NULL : dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (cu) {
        int (*init)(unsigned) = (int (*)(unsigned))dlsym(cu, "cuInit");
        int (*get)(int *, int) = (int (*)(int *, int))dlsym(cu, "cuDeviceGet");
        int (*attr)(int *, int, int) = (int (*)(int *, int, int))dlsym(cu, "cuDeviceGetAttribute");
        int d = 0;
        if (init && get && attr && init(0) == 0 && get(&d, 0) == 0) {
            if (attr(&sms, 16, d) != 0) sms = 0;  // CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT
            if (attr(&khz, 13, d) != 0) khz = 0;  // CU_DEVICE_ATTRIBUTE_CLOCK_RATE, kHz
        }
    }
    const char *mhz = getenv("ZT_SM_CLOCK_MHZ");
    if (khz <= 0 && mhz && atoi(mhz) > 0) khz = atoi(mhz) * 1000;
    if (g_dry) sms = 132, khz = 1980000;
    if (sms <= 0 || khz <= 0) {
        printf("  bf16 instruction limit unknown (no SM count or clock): bf16 held to the copy floor\n");
        return;
    }
    const double limit = sms * 4.0 * khz * 1e3 * 128 / BF16_CLOCKS_PER_WARP_BLOCK * 4 / 1e9;
    printf("  bf16 perturb/update instruction limit: %d SMs x 4 x %.0f MHz x 128 / %.0f clocks x 4 B = %.0f GB/s",
           sms, khz / 1e3, BF16_CLOCKS_PER_WARP_BLOCK, limit);
    if (g_dry) {
        printf(" (dry run: an H100's figures)\n");
        return;
    }
    g_bf16_floor = fmin(FLOOR_STREAM, FLOOR_INSTR * limit / copy_gbs);
    printf(" (%.0f%% of copy); floor %.0f%% of copy\n", 100 * limit / copy_gbs, 100 * g_bf16_floor);
}
