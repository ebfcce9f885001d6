#!/usr/bin/env bash
# Fuzzes every parser of untrusted input (Sources/ZOTuneFuzzing/Targets.swift) and writes
# bench/results/fuzz.md. Two engines:
#   bench/fuzz.sh [--inputs N] [target ...]
#       the seeded mutation harness (release build): N inputs per target (default 1,000,000),
#       a hang = one input over 1 s; deterministic (seed 1), so a run can be repeated exactly
#   LIBFUZZER=1 bench/fuzz.sh [--seconds S] [target ...]
#       coverage-guided libFuzzer with AddressSanitizer (and LeakSanitizer), S seconds per target
#       (default 600), timeout 1 s per input, 2 GiB RSS limit; build in .build/fuzz
# A crash (the process dies on an input) is copied to Tests/Fuzz/regressions/<target>/, which the
# test suite replays through the parser; fix the parser, keep the input.
set -euo pipefail
cd "$(dirname "$0")/.."
inputs=1000000 seconds=600
targets=()
while [[ $# -gt 0 ]]; do
    case $1 in
    --inputs) inputs=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    *) targets+=("$1"); shift ;;
    esac
done
work=runs/fuzz
# Every input is written to a file before it is read: on a disk-backed directory that write costs
# ~1 ms (15x the parse itself), so the scratch files live in memory when /dev/shm exists.
scratch=$work
[[ -d /dev/shm && -w /dev/shm ]] && scratch=/dev/shm/zotune-fuzz-$$
mkdir -p "$work" "$scratch" bench/results
trap '[[ $scratch != "$work" ]] && rm -rf "$scratch"' EXIT
if [[ -n ${LIBFUZZER:-} ]]; then
    # lld: gold fails on this link (an internal error in its DWARF reader).
    swift build -c release --build-path .build/fuzz -Xswiftc -sanitize=fuzzer,address -Xswiftc -DZOTUNE_LIBFUZZER \
        -Xswiftc -Xclang-linker -Xswiftc -fuse-ld=lld --product zotune-fuzz 2>&1 | tail -n 1
    # Foundation's Data(contentsOf:) leaks a read buffer on some inputs: not ours, suppressed.
    export LSAN_OPTIONS=suppressions=$PWD/bench/fuzz-lsan.supp
    F=.build/fuzz/release/zotune-fuzz
else
    swift build -c release --product zotune-fuzz 2>&1 | tail -n 1
    F=.build/release/zotune-fuzz
fi
[[ ${#targets[@]} -gt 0 ]] || mapfile -t targets < <("$F" list | cut -f1)
results=$work/results.jsonl
: > "$results"

file_crash() {   # target, reproducer
    local dir=Tests/Fuzz/regressions/$1 sum
    mkdir -p "$dir"
    sum=$(sha1sum "$2" | cut -c1-16)
    cp "$2" "$dir/crash-$sum"
    echo "   crash input kept as $dir/crash-$sum"
}

for t in "${targets[@]}"; do
    echo "== $t"
    tw=$scratch/$t
    rm -rf "$tw"; mkdir -p "$tw"
    if [[ -n ${LIBFUZZER:-} ]]; then
        corpus=$tw/corpus
        mkdir -p "$corpus"
        "$F" seeds "$t" "$tw/seeds"   # libFuzzer reads directories; new inputs go to corpus/
        status=0
        start=$(date +%s)
        ZOTUNE_FUZZ_TARGET=$t ZOTUNE_ROOT=$PWD "$F" -max_total_time="$seconds" -timeout=1 -rss_limit_mb=2048 \
            -artifact_prefix="$tw/" -print_final_stats=1 "$corpus" "$tw/seeds" > "$tw/log" 2>&1 || status=$?
        runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$tw/log" | grep -o '[0-9]*$' || echo 0)
        cov=$(grep -o 'cov: [0-9]*' "$tw/log" | tail -n 1 | grep -o '[0-9]*$' || echo 0)
        crashes=0
        for c in "$tw"/crash-* "$tw"/timeout-* "$tw"/leak-* "$tw"/oom-*; do
            [[ -f $c ]] || continue
            crashes=$((crashes + 1)); file_crash "$t" "$c"
        done
        echo "{\"target\": \"$t\", \"engine\": \"libfuzzer\", \"inputs\": ${runs:-0}, \"seconds\": $(( $(date +%s) - start )), \"crashes\": $crashes, \"edges\": ${cov:-0}, \"exit\": $status}" >> "$results"
    else
        status=0
        "$F" run "$t" --inputs "$inputs" --seed 1 --work "$tw" > "$tw/result.json" 2> "$tw/log" || status=$?
        if [[ $status -ge 128 || $status -eq 132 || $status -eq 133 || $status -eq 134 ]]; then
            echo "   died with status $status"
            file=$("$F" list | awk -v t="$t" '$1 == t {print $2}')
            file_crash "$t" "$tw/$file"
            echo "{\"target\": \"$t\", \"engine\": \"mutation\", \"crashes\": 1, \"exit\": $status}" >> "$results"
        else
            python3 -c "import json,sys; r=json.load(open('$tw/result.json')); r['engine']='mutation'; print(json.dumps(r))" >> "$results"
        fi
    fi
    # Keep the log and any slow inputs once the scratch copy is gone.
    if [[ $scratch != "$work" ]]; then
        rm -rf "${work:?}/$t"; mkdir -p "$work/$t"
        cp "$tw"/log "$tw"/result.json "$work/$t/" 2>/dev/null || true
        [[ -d $tw/hangs ]] && cp -r "$tw/hangs" "$work/$t/"
        rm -rf "$tw"
    fi
    tail -n 1 "$results"
done
python3 bench/fuzz_table.py "$results"
