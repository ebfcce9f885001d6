#!/usr/bin/env bash
# Whole-model checks of the packaged zotune on a GPU machine without Swift, after check.sh:
#   bench/device/package.sh (here)  →  carry bench/device/dist  →  on the GPU machine:
#   Kernels/build.sh && bench/device/e2e.sh
# On the tiny Llama fixture (tracked in Tests/ModelTests/Fixtures) and a 12-sentence SST-2 file
# written here, with the CUDA device (E2E_DEVICE, default cuda) against the CPU:
#   1. next-token log-probs after a prompt (printed to 4 decimals): max |Δ| ≤ 2e-4;
#   2. mezo, zo-adam, dizo (searches every 3 steps) and zoop: 8 steps trained on the CPU, then on the
#      device; final training loss of each printed side by side (forwards differ in rounding, so
#      trajectories drift apart slowly: reported, not asserted);
#   3. the CPU runs' trajectories (not zoop's: it cannot replay) replayed on the device: the
#      exported model.safetensors must be byte-identical to the CPU's own replay;
#   4. LoRA, prefix and prompt tuning (MeZO) trained on both; the CPU adapter trajectories replayed
#      on the device: adapter_model.safetensors byte-identical to the CPU's replay;
#   5. block-wise MeZO (per step by layer; sequential with re-initialisation) and a pre-training
#      run from scratch (a 2-layer Llama on a small text corpus): trained on both, the CPU
#      trajectories replayed on the device byte-identically (the pre-training run from its init/).
# Exit 1 on any failed check. E2E_DEVICE=cpu runs the script end to end without a GPU.
set -euo pipefail
cd "$(dirname "$0")/../.."
dev=${E2E_DEVICE:-cuda}
Z=${ZOTUNE:-bench/device/dist/zotune}
[[ -x $Z ]] || Z=.build/release/zotune
export LD_LIBRARY_PATH="bench/device/dist:${LD_LIBRARY_PATH:-}"
export ZOTUNE_CUDA_LIB=${ZOTUNE_CUDA_LIB:-$PWD/Kernels/build/libzotune_cuda.so}
source bench/device/cublas_env.sh  # cuBLAS is dlopened by name
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fails=0
# Files of the two sides are named cpu and dev (the device side keeps its own names when it is the
# CPU too: E2E_DEVICE=cpu); on SIDE gives the --device of a side.
on() { if [[ $1 == cpu ]]; then echo cpu; else echo "$dev"; fi; }
check() {  # name, ok (0/1), detail
    printf '  %-44s %s   %s\n' "$1" "$([[ $2 == 1 ]] && echo ok || echo FAILED)" "$3"
    [[ $2 == 1 ]] || fails=$((fails + 1))
}
# Replays a CPU trajectory on the CPU and on the device and compares the exported FILE.
replay_check() {  # name, trajectory, file[, base]
    for d in cpu dev; do
        "$Z" replay --base "${4:-$model}" --trajectory "$2" --all-steps --device "$(on "$d")" --out "$work/$1-replay-$d" > /dev/null 2>&1
    done
    if cmp -s "$work/$1-replay-cpu/$3" "$work/$1-replay-dev/$3"; then
        check "$1: replay on $dev == on cpu" 1 "$3 byte-identical"
    else
        check "$1: replay on $dev == on cpu" 0 "$3 differ"
    fi
}
loss() { python3 -c "import json,sys; print([json.loads(l) for l in open(sys.argv[1]) if '\"loss\"' in l][-1]['loss'])" "$1"; }

model=$work/model data=$work/data/SST-2
mkdir -p "$model" "$data"
cp Tests/ModelTests/Fixtures/models/llama/{config.json,model.safetensors} "$model/"
cp Tests/ModelTests/Fixtures/tokenizers/smollm.json "$model/tokenizer.json"
{
    printf 'sentence\tlabel\n'
    i=0
    for s in "a joy to watch" "dull and slow" "warm and clever" "nothing works" "great fun" "a tedious mess" \
             "worth every minute" "flat and lifeless" "a small marvel" "I wanted to leave" "moving and funny" "the worst"; do
        printf '%s \t%d\n' "$s" $(((i + 1) % 2)); i=$((i + 1))
    done
} > "$data/train.tsv"

echo "== $("$Z" devices --device "$dev" 2>&1 | head -n 1)"
echo "== 1. log-probs after a prompt, $dev vs cpu"
for d in cpu dev; do "$Z" logits --model "$model" --text "a warm and clever story" --top 20 --json --device "$(on "$d")" > "$work/logits-$d.json"; done
read -r ok detail < <(python3 - "$work/logits-cpu.json" "$work/logits-dev.json" <<'EOF'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
def table(o):
    return {t["id"]: t["logprob"] for t in o.get("top", o.get("tokens", []))}
ta, tb = table(a), table(b)
common = set(ta) & set(tb)
worst = max((abs(ta[k] - tb[k]) for k in common), default=float("inf"))
print(int(len(common) >= 15 and worst <= 2e-4), f"max|Δ logprob| {worst:.1e} over {len(common)} shared top tokens (printed to 1e-4)")
EOF
)
check "logits $dev vs cpu" "$ok" "$detail"

echo "== 2-3. short runs on cpu and $dev; cpu trajectories replayed on $dev"
common=(--task sst2 --data-dir "$work/data" --steps 8 --batch-size 4 --lr 1e-3 --eps 1e-2 --eval-every 4
        --train-count 6 --dev-count 3 --test-count 3 --save-every 4 --seed 5)
for opt in "mezo" "zo-adam --lr 1e-4" "dizo --dizo-interval 3 --dizo-iterations 2 --dizo-layers q,k,v" "zoop --lr 1e-2"; do
    name=${opt%% *}
    for d in cpu dev; do
        # shellcheck disable=SC2086
        "$Z" train --model "$model" "${common[@]}" --optimizer $opt --device "$(on "$d")" --out "$work/$name-$d" > "$work/$name-$d.log" 2>&1 \
            || { check "$name: train on $(on "$d")" 0 "$(tail -n 2 "$work/$name-$d.log")"; continue 2; }
    done
    echo "  $name: last training loss cpu $(loss "$work/$name-cpu/metrics.jsonl"), $dev $(loss "$work/$name-dev/metrics.jsonl")"
    [[ $name == zoop ]] || replay_check "$name" "$work/$name-cpu/trajectory.zot" model.safetensors
done
echo "== 4. PEFT runs (lora, prefix, prompt) on cpu and $dev; cpu trajectories replayed on $dev"
for peft in lora prefix prompt; do
    for d in cpu dev; do
        "$Z" train --model "$model" "${common[@]}" --peft "$peft" --device "$(on "$d")" --out "$work/$peft-$d" > "$work/$peft-$d.log" 2>&1 \
            || { check "$peft: train on $(on "$d")" 0 "$(tail -n 2 "$work/$peft-$d.log")"; continue 2; }
    done
    echo "  $peft: last training loss cpu $(loss "$work/$peft-cpu/metrics.jsonl"), $dev $(loss "$work/$peft-dev/metrics.jsonl")"
    replay_check "$peft" "$work/$peft-cpu/trajectory.zot" adapter_model.safetensors
done
echo "== 5. block-wise runs and pre-training from scratch on cpu and $dev; cpu trajectories replayed on $dev"
for run in "blocks --blocks layer" "blockseq --blocks layer --block-schedule sequential --block-steps 2 --block-reinit"; do
    name=${run%% *}
    for d in cpu dev; do
        # shellcheck disable=SC2086
        "$Z" train --model "$model" "${common[@]}" ${run#* } --device "$(on "$d")" --out "$work/$name-$d" > "$work/$name-$d.log" 2>&1 \
            || { check "$name: train on $(on "$d")" 0 "$(tail -n 2 "$work/$name-$d.log")"; continue 2; }
    done
    echo "  $name: last training loss cpu $(loss "$work/$name-cpu/metrics.jsonl"), $dev $(loss "$work/$name-dev/metrics.jsonl")"
    replay_check "$name" "$work/$name-cpu/trajectory.zot" model.safetensors
done
for i in 1 2 3 4 5 6 7 8; do
    printf 'The river rises in the hills and runs south through the farms to the sea, number %d.\n\n' "$i"
    printf 'In spring the water is high and cold; by late summer it is slow and clear, year %d.\n\n' "$i"
done > "$work/corpus.txt"
for d in cpu dev; do
    "$Z" pretrain --corpus "$work/corpus.txt" --held-out-every 4 --tokenizer "$model/tokenizer.json" --layers 2 --hidden 32 --heads 4 \
        --seq-len 16 --batch-size 4 --steps 6 --eval-every 3 --lr 1e-3 --eps 1e-2 --blocks layer --device "$(on "$d")" --out "$work/pre-$d" \
        > "$work/pre-$d.log" 2>&1 || { check "pretrain on $(on "$d")" 0 "$(tail -n 2 "$work/pre-$d.log")"; break; }
done
if [[ -f $work/pre-cpu/summary.json && -f $work/pre-dev/summary.json ]]; then
    read -r ok detail < <(python3 - "$work/pre-cpu/summary.json" "$work/pre-dev/summary.json" <<'EOF'
import json, sys
a, b = (json.load(open(p))["perplexity_before"] for p in sys.argv[1:3])
print(int(abs(a - b) <= 1e-4 * a), f"initial held-out perplexity cpu {a:.4f}, device {b:.4f}")
EOF
)
    check "pretrain: held-out perplexity $dev vs cpu" "$ok" "$detail"
    replay_check pretrain "$work/pre-cpu/trajectory.zot" model.safetensors "$work/pre-cpu/init"
fi
echo
echo "$fails failed"
[[ $fails == 0 ]]
