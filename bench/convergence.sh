#!/usr/bin/env bash
# Convergence benchmark of issue 32: which ZO method reaches MeZO's best dev accuracy in fewer
# forwards, and in fewer wall seconds. SmolLM2-135M-Instruct (f32 on the CPU) on the movie snippets
# and SST-2 (../shared/data), 3 seeds, every method at its best lr of bench/optimizers.sh's grid
# (the ★ rows of bench/results/optimizers.md; the frontier methods at the lr whose per-coordinate
# step matches MeZO's, as that script states, until their cells have run), all at EQUAL FORWARDS:
# each gets FORWARDS training forwards (steps = FORWARDS / its forwards per step), dev accuracy every
# ~EVAL_FORWARDS forwards, test at the end (--keep-last: test at equal forwards, not at the best dev).
# bench/convergence_table.py turns the run directories into bench/results/convergence.md + .svg:
# forwards and seconds to reach MeZO's best (mean-of-seeds) dev accuracy, test at equal forwards, memory.
#
# NOT RUN IN FULL YET: the full protocol (2 tasks x 9 methods x 3 seeds x 1000 forwards) is ~50 h of
# this 2-core machine; the script was smoke-tested only, with
#   FORWARDS=8 EVAL_FORWARDS=4 BATCH=2 EVAL_COUNT=4 TEST_COUNT=4 SEEDS=0 TASKS=movies METHODS="mezo lowrank-spsa" OUT=runs/convergence-smoke
# Resumable: a finished run (summary.json) is skipped, an interrupted one resumes (--resume).
#   bench/convergence.sh            env: TASKS, METHODS, SEEDS, FORWARDS, EVAL_FORWARDS, BATCH, EVAL_COUNT, TEST_COUNT, OUT, ZOTUNE
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/common.sh
[[ -n ${ZOTUNE:-} ]] || bench_setup
Z=${ZOTUNE:-.build/release/zotune}
model=$(smollm2_gguf)
movie_data runs/data
TASKS=${TASKS:-"movies sst2"}
METHODS=${METHODS:-"mezo hizoo dizo sparse-mezo fzoo lowrank-spsa mezo-svrg lozo subzero"}
SEEDS=${SEEDS:-"0 1 2"}
FORWARDS=${FORWARDS:-1000}
EVAL_FORWARDS=${EVAL_FORWARDS:-50}
BATCH=${BATCH:-16}
EVAL_COUNT=${EVAL_COUNT:-200}
TEST_COUNT=${TEST_COUNT:-500}
OUT=${OUT:-runs/convergence}

# lr (best of bench/optimizers.sh's grid), mean training forwards per step, and extra flags.
declare -A lr=([mezo]=1e-4 [hizoo]=1e-4 [dizo]=1e-4 [sparse-mezo]=2e-4 [fzoo]=3e-3 [lowrank-spsa]=2e-4 [mezo-svrg]=1e-5
              [lozo]=1e-4 [subzero]=1e-4)
# DiZO: ~2.8 forwards a step with its search every 25 steps (bench/results/optimizers.md: 280 over 100).
declare -A fps=([mezo]=2 [hizoo]=3 [dizo]=2.8 [sparse-mezo]=2 [fzoo]=9 [lowrank-spsa]=8 [mezo-svrg]=6 [lozo]=2 [subzero]=2)
declare -A extra=([dizo]="--dizo-interval 25")

for task in $TASKS; do
    data=runs/data
    [[ $task != movies ]] && data=${DATA_DIR:-../shared/data}
    for m in $METHODS; do
        steps=$(python3 -c "print(max(1, round($FORWARDS / ${fps[$m]})))")
        every=$(python3 -c "print(max(1, round($EVAL_FORWARDS / ${fps[$m]})))")
        for s in $SEEDS; do
            dir=$OUT/$task/$m-s$s
            if [[ -f $dir/summary.json ]]; then echo "== $task $m seed $s: done"; continue; fi
            echo "== $task $m seed $s ($steps steps, dev every $every)"
            where=(--out "$dir")
            [[ -f $dir/trajectory.zot ]] && where=(--resume "$dir")
            # shellcheck disable=SC2086
            nice -n 10 "$Z" train --model "$model" --task "$task" --data-dir "$data" --optimizer "$m" --eps 1e-3 --lr "${lr[$m]}" \
                --steps "$steps" --eval-every "$every" --batch-size "$BATCH" --eval-count "$EVAL_COUNT" --test-count "$TEST_COUNT" \
                --seed "$s" --data-seed "$s" --keep-last ${extra[$m]:-} "${where[@]}" | grep -v '^step ' || true
        done
    done
done
python3 bench/convergence_table.py "$OUT" bench/results/convergence
