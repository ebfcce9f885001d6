#!/usr/bin/env bash
# The second half of the README's test command (`Tests/setup.sh && swift test && Tests/kernel-sets.sh`),
# which CI runs: after the whole suite has passed on this CPU's default kernels, the tests that
# compare numbers with an outside reference (PyTorch, transformers, peft, llama.cpp-derived values,
# float64 closed forms) run again under other kernel sets, so a tolerance that only holds for one
# GEMM summation order fails here and not on a user's CPU: OpenBLAS's Haswell (FMA) and Sandybridge
# (no FMA) kernels, which any AVX2 CPU runs, and, for the tests that run torch live, ATen's kernels
# without SIMD (ATEN_CPU_CAPABILITY=default; it changes torch's matmul too) and, on AVX-512 CPUs, its
# AVX2 ones. Where OPENBLAS_CORETYPE is already set (a safety setting on some CPUs) it is kept and
# the extra OpenBLAS runs are skipped. Uses the build `swift test` made (--skip-build). The last
# line is "N passed, N failed": test cases over these reruns (skipped ones counted on the line before).
set -uo pipefail
cd "$(dirname "$0")/.."

PARITY='^(KernelTests\.(OpsTests|NewtonSchulzTests)|ModelTests\.(ForwardParityTests|SmolLM2ParityTests|GGUFTests)|TrainingTests\.(OptimizerReferenceTests|PretrainTests|PEFTTests|ExportTests|LoRATests|DiZOTests|MatrixOptimizerTests|ZoopTests|QuadraticOracleTests|LowRankProbeTests|LowRankSPSATests|FrontierOptimizerTests|FrontierReferenceTests|NSGroupingTests|LOZOSubZeroTests))/'
LIVE_TORCH='^TrainingTests\.(PretrainTests|PEFTTests|ExportTests)/'

passed=0 failed=0 skipped=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# run LABEL [VAR=value ...] -- swift test arguments
run() {
    local label=$1; shift
    local envs=()
    while [ "$1" != "--" ]; do envs+=("$1"); shift; done
    shift
    echo "== Tests/kernel-sets.sh: $label${envs[*]:+ (${envs[*]})}"
    env "${envs[@]}" swift test "$@" 2>&1 | tee "$log"
    local rc=${PIPESTATUS[0]}
    # XCTest's closing summary: "Executed N tests, with [K tests skipped and ]M failures (...)" (the
    # last one is the total).
    local summary
    summary=$(grep -E 'Executed [0-9]+ tests?, with .*[0-9]+ failures?' "$log" | tail -1)
    if [ -n "$summary" ]; then
        local n m k=0
        n=$(sed -E 's/.*Executed ([0-9]+) tests?.*/\1/' <<<"$summary")
        m=$(sed -E 's/.* ([0-9]+) failures?.*/\1/' <<<"$summary")
        if grep -qE '[0-9]+ tests? skipped' <<<"$summary"; then
            k=$(sed -E 's/.* ([0-9]+) tests? skipped.*/\1/' <<<"$summary")
        fi
        passed=$((passed + n - m - k)); failed=$((failed + m)); skipped=$((skipped + k))
        if [ "$rc" -ne 0 ] && [ "$m" -eq 0 ]; then failed=$((failed + 1)); fi
    else
        failed=$((failed + 1))   # no summary: the build or the runner itself failed
    fi
}

cpu_has() { grep -qw "$1" /proc/cpuinfo; }

if [ -n "${OPENBLAS_CORETYPE:-}" ]; then
    echo "Tests/kernel-sets.sh: OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE is set; keeping it, skipping the Haswell and Sandybridge runs"
else
    for core in Haswell Sandybridge; do
        need=avx2; [ "$core" = Sandybridge ] && need=avx
        if cpu_has "$need"; then
            run "reference-parity tests, OpenBLAS $core kernels" OPENBLAS_CORETYPE=$core -- --skip-build --filter "$PARITY"
        else
            echo "Tests/kernel-sets.sh: this CPU lacks $need; skipping the OpenBLAS $core run"
        fi
    done
fi
run "live-torch tests, ATen without SIMD" ATEN_CPU_CAPABILITY=default -- --skip-build --filter "$LIVE_TORCH"
if cpu_has avx512f; then
    run "live-torch tests, ATen AVX2 kernels" ATEN_CPU_CAPABILITY=avx2 -- --skip-build --filter "$LIVE_TORCH"
fi

echo "Tests/kernel-sets.sh: $skipped skipped (each test says what it lacks)"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
