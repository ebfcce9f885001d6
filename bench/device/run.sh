#!/usr/bin/env bash
# The whole device session in one script (≤ 8 minutes on an H200, build included), for a GPU
# machine without Swift. Here: bench/device/package.sh (carry bench/device/dist/zotune.tar.xz). There:
#   bench/device/run.sh [LOG_DIR]
# 1. check.sh: every kernel against the CPU, timings, speed floors (perturb/update ≥ 70% of the
#    copy bandwidth; bf16 GEMM at Llama-7B shapes ≥ 50% of the bf16 peak; both measured in the run)
# 2. e2e.sh: the carried zotune on the tiny Llama fixture, device against CPU (forward, every
#    optimizer family, PEFT, block-wise, pre-training; CPU trajectories replayed byte-identically)
# 3. SmolLM2-135M's shapes (seeded random bf16 weights, smollm2_shaped.py: the real 98 MB GGUF does
#    not travel): next-token log-probs device vs CPU (f32 vs f32; mixed vs the CPU's emulation of
#    mixed), two MeZO steps (loss and projected gradient; the CPU's trajectory replayed on the
#    device gives byte-identical weights), forward tokens/s and MeZO s/step.
# Every command runs under `timeout`; one summary table at the end; exit 1 if anything failed.
# RUN_DEVICE=cpu rehearses the whole script on a machine without a GPU (check.sh --self-test, and
# the CPU against itself).
set -uo pipefail
cd "$(dirname "$0")/../.."
logs=${1:-${OUT:-$(mktemp -d)}}
mkdir -p "$logs"
Z=${ZOTUNE:-bench/device/dist/zotune}
if [[ ! -x $Z && -f bench/device/dist/zotune.tar.xz ]]; then  # what package.sh packed (carry that file)
    python3 -c "import tarfile; tarfile.open('bench/device/dist/zotune.tar.xz').extractall('bench/device/dist')"
fi
export LD_LIBRARY_PATH="$PWD/bench/device/dist:${LD_LIBRARY_PATH:-}"
export ZOTUNE_CUDA_LIB=$PWD/Kernels/build/libzotune_cuda.so
work=$(mktemp -d)
start=$(date +%s)
dev=${RUN_DEVICE:-cuda}
rows=() fails=0
row() {  # section, ok (1/0/-), figure
    rows+=("$(printf '%-34s %-6s %s' "$1" "$([[ $2 == 1 ]] && echo ok || { [[ $2 == - ]] && echo info || echo FAILED; })" "$3")")
    [[ $2 == 0 ]] && fails=$((fails + 1))
}
run() {  # seconds, log name, command...: runs under timeout, output to the log; returns its status
    local t=$1 log=$logs/$2.log; shift 2
    timeout "$t" "$@" > "$log" 2>&1
    local s=$?
    [[ $s == 124 ]] && echo "(timed out after $t s)" >> "$log"
    return $s
}
json() { python3 -c "import json,sys; print(json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])[sys.argv[2]])" "$@"; }

timeout 10 nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader > "$logs/gpu.log" 2>&1
row "GPU" - "$(head -n 1 "$logs/gpu.log")"

# 1. kernels
run 300 check bench/device/check.sh $([[ $dev == cpu ]] && echo --self-test); s=$?
summary=$(grep -E '^[0-9]+ checks, [0-9]+ failed' "$logs/check.log" | tail -n 1)
row "kernels vs CPU (check.sh)" "$([[ $s == 0 ]] && echo 1 || echo 0)" "${summary:-no summary (status $s)}"
speed=$(grep '^speed:' "$logs/check.log" | tail -n 1)
row "speed floors" - "${speed#speed: }"

# 2. whole runs on the tiny fixture
run 150 e2e env ZOTUNE="$Z" E2E_DEVICE="$dev" bench/device/e2e.sh; s=$?
row "zotune runs, tiny Llama (e2e.sh)" "$([[ $s == 0 ]] && echo 1 || echo 0)" "$(tail -n 1 "$logs/e2e.log")"

# 3. SmolLM2-135M shapes
smol=$work/smol
if run 90 smol-make python3 bench/device/smollm2_shaped.py "$smol"; then
    cp Tests/ModelTests/Fixtures/tokenizers/smollm.json "$smol/tokenizer.json"
    text="a warm and clever story about the sea"
    for p in "cpu f32" "$dev f32" "cpu mixed" "$dev mixed"; do
        read -r d prec <<< "$p"
        run 60 "logits-$d-$prec" "$Z" logits --model "$smol" --dtype bf16 --precision "$prec" --text "$text" --top 50 --json --device "$d"
    done
    for prec in f32 mixed; do
        tol=$([[ $prec == f32 ]] && echo 2e-4 || echo 1e-2)
        read -r ok detail < <(python3 - "$logs/logits-cpu-$prec.log" "$logs/logits-$dev-$prec.log" "$tol" <<'PY'
import json, sys
try:
    a, b = (json.loads(open(p).read().strip().splitlines()[-1]) for p in sys.argv[1:3])
    ta, tb = ({t["id"]: t["logprob"] for t in o.get("top", o.get("tokens", []))} for o in (a, b))
    common = set(ta) & set(tb)
    worst = max(abs(ta[k] - tb[k]) for k in common)
    print(int(len(common) >= 40 and worst <= float(sys.argv[3])), f"max |Δ log-prob| {worst:.1e} over {len(common)} top tokens (tol {sys.argv[3]})")
except Exception as e:
    print(0, f"no result ({e})")
PY
)
        row "SmolLM2 shapes: log-probs $prec" "$ok" "$detail"
    done
    # Two MeZO steps on both devices from the same weights (f32 GEMMs on both).
    data=$work/data/SST-2
    mkdir -p "$data"
    { printf 'sentence\tlabel\n'; for i in $(seq 1 16); do printf 'a warm story number %d \t%d\n' "$i" $((i % 2)); done; } > "$data/train.tsv"
    for d in cpu "$dev"; do
        run 120 "mezo-$d" "$Z" train --model "$smol" --dtype bf16 --precision f32 --task sst2 --data-dir "$work/data" --steps 2 \
            --batch-size 4 --lr 1e-4 --eps 1e-3 --train-count 8 --dev-count 4 --test-count 4 --eval-every 2 --seed 3 \
            --device "$d" --out "$work/mezo-$d"
    done
    read -r ok detail < <(python3 - "$work/mezo-cpu/metrics.jsonl" "$work/mezo-$dev/metrics.jsonl" <<'PY'
import json, sys
try:
    a, b = ([json.loads(l) for l in open(p) if '"g"' in l] for p in sys.argv[1:3])
    dl = max(abs(x["loss"] - y["loss"]) for x, y in zip(a, b))
    dg = max(abs(x["g"] - y["g"]) / max(abs(x["g"]), 1e-3) for x, y in zip(a, b))
    print(int(len(a) == len(b) == 2 and dl <= 1e-4 and dg <= 5e-2), f"2 steps: max |Δ loss| {dl:.1e} (tol 1e-4), max rel |Δ g| {dg:.1e} (tol 5e-2)")
except Exception as e:
    print(0, f"no result ({e})")
PY
)
    row "SmolLM2 shapes: MeZO steps" "$ok" "$detail"
    # The updated weights: the CPU run's trajectory replayed on both devices, exports compared.
    for d in cpu "$dev"; do
        run 120 "replay-$d" "$Z" replay --base "$smol" --trajectory "$work/mezo-cpu/trajectory.zot" --all-steps \
            --device "$d" --out "$work/replay-$d"
    done
    if cmp -s "$work/replay-cpu/model.safetensors" "$work/replay-$dev/model.safetensors"; then
        row "SmolLM2 shapes: updated weights" 1 "2 MeZO steps replayed on $dev: model.safetensors byte-identical to the CPU's"
    else
        row "SmolLM2 shapes: updated weights" 0 "replayed weights differ (or a replay failed: replay-*.log)"
    fi
    for d in "$dev" cpu; do
        reps=$([[ $d == cuda ]] && echo 10 || echo 1)
        run 120 "forward-$d" "$Z" bench forward --model "$smol" --dtype bf16 --batch-size 16 --seq-len 128 --repeats "$reps" --json --device "$d"
        run 150 "step-$d" "$Z" bench step --model "$smol" --dtype bf16 --optimizer mezo --batch-size 16 --seq-len 128 --repeats "$((reps < 3 ? 1 : 3))" --json --device "$d"
    done
    f_gpu=$(json "$logs/forward-$dev.log" tokens_per_s 2>/dev/null) f_cpu=$(json "$logs/forward-cpu.log" tokens_per_s 2>/dev/null)
    s_gpu=$(json "$logs/step-$dev.log" step_s 2>/dev/null) s_cpu=$(json "$logs/step-cpu.log" step_s 2>/dev/null)
    row "SmolLM2 shapes: forward 16x128" "$([[ -n $f_gpu ]] && echo - || echo 0)" "$dev ${f_gpu:-?} tokens/s, cpu ${f_cpu:-?} tokens/s"
    row "SmolLM2 shapes: MeZO step 16x128" "$([[ -n $s_gpu ]] && echo - || echo 0)" "$dev ${s_gpu:-?} s/step, cpu ${s_cpu:-?} s/step"
else
    row "SmolLM2 shapes" 0 "could not write the checkpoint (see smol-make.log)"
fi
rm -rf "$work"

echo "== device run summary ($(( $(date +%s) - start )) s; logs in $logs)"
printf '%s\n' "${rows[@]}"
echo "$fails failed"
[[ $fails == 0 ]]
