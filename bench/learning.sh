#!/usr/bin/env bash
# The learning table (MeZO paper, Table 1 style) for SmolLM2-135M-Instruct on the CPU: for each
# task, zero-shot, in-context learning (K = 16 demonstrations) and MeZO full-parameter tuning, all
# scored on the same test examples. One cell per (task, method), resumable: a finished cell's
# result (bench/results/learning/<task>.<method>.json) is not recomputed. Zero-shot and ICL are
# `zotune eval` calls; a task's training cells are one `zotune sweep` over
# runs/learning/<task>/base.json (a run directory per cell; an interrupted one resumes).
# Writes bench/results/learning.md and learning.svg.
#   bench/learning.sh [task ...]          default: every task below
#   METHODS="zero-shot icl" bench/learning.sh rte     only those columns
#   METHODS="mezo+lora mezo+prefix zo-adam" bench/learning.sh   more columns: any optimizer, with
#                                         +lora/+prefix/+prompt, at its lr in LR below
# The budget (the same for every task; see the table's header):
#   data      train 1000 / dev 100 / test 200 examples drawn with data seed 0 (MeZO's protocol,
#             scaled down; small validation files give smaller dev/test, in proportion)
#   zero-shot MeZO's prompts, max length 512
#   icl       16 demonstrations drawn from the train split per test example (data seed 0),
#             max length 2048: longer prompts lose their earliest demonstrations (counted)
#   mezo      200 steps, batch 16, lr 1e-4, eps 1e-3, seed 0, max length 512; dev 100 every 50
#             steps; test at the best dev step (other training columns: the same, at their LR)
# Takes hours on 2 cores (MultiRC and BoolQ dominate); never part of CI.
# Smaller runs (a check of the script, not a result): STEPS, EVAL_EVERY, TRAIN_COUNT, DEV_COUNT,
# TEST_COUNT override 200, 50, 1000, 100, 200; ZOTUNE names the binary; THREADS sets --threads.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/common.sh
bench_setup
data=${DATA_DIR:-../shared/data}
movies=runs/data
movie_data "$movies"
model=$(smollm2_gguf)
Z=${ZOTUNE:-.build/release/zotune}  # ZOTUNE: a copy, so a rebuild mid-run cannot swap the binary
cells=bench/results/learning
runs=runs/learning
mkdir -p "$cells" "$runs"

# Cheapest first, so an interrupted table has its short tasks.
tasks=("${@:-sst2 movies copa wsc cb wic rte boolq multirc}")
read -r -a tasks <<< "${tasks[*]}"
read -r -a methods <<< "${METHODS:-zero-shot icl mezo}"
counts=(--train-count ${TRAIN_COUNT:-1000} --dev-count ${DEV_COUNT:-100} --test-count ${TEST_COUNT:-200} --data-seed 0)
steps=${STEPS:-200}
# Training cells' lrs: the best of bench/results/optimizers.md (100 steps on the movie snippets).
declare -A LR=([mezo]=1e-4 [zo-sgd-mmt]=1e-5 [zo-adam]=1e-3 [zo-sign]=1e-3 [zo-cons]=1e-4 [hizoo]=1e-4 [zo-muon]=1e-3
               [jaguar-sign]=1e-3 [jaguar-muon]=1e-2 [dizo]=1e-4 [mezo+lora]=3e-3 [mezo+prefix]=1e-2 [mezo+prompt]=1e-2)
declare -A EXTRA=([zo-muon]="ns-steps=5" [jaguar-muon]="orthogonalize-every=5")  # sweep cell settings

# A training cell's result file from its run directory.
cell_json() {  # RUN OUT TASK METHOD LR
    python3 - "$1" "$2" "$3" "$4" "$5" "$steps" <<'EOF'
import json, sys
run, path, task, method, lr, steps = sys.argv[1:7]
s = json.load(open(run + "/summary.json"))
curve = {}
for line in open(run + "/metrics.jsonl"):
    m = json.loads(line)
    if m.get("dev_accuracy") is not None:
        curve[m["step"]] = m["dev_accuracy"]
r = {"task": task, "method": method, "lr": float(lr), "accuracy": s["test"], "dev_before": s["dev_before"], "dev_after": s["dev_after"],
     "best_step": s["best_step"], "seconds": s["seconds"], "steps": int(steps), "optimizer_config": s.get("optimizer_config"),
     "dev_curve": sorted([k, v] for k, v in curve.items())}
open(path, "w").write(json.dumps(r, sort_keys=True) + "\n")
EOF
}

status=0
for task in "${tasks[@]}"; do
    dir=$data; [[ $task == movies ]] && dir=$movies
    sweep=() trained=()
    for method in "${methods[@]}"; do
        out=$cells/$task.$method.json
        if [[ -f $out ]]; then echo "== $task $method: done"; continue; fi
        case $method in
        zero-shot|icl)
            echo "== $task $method"
            start=$(date +%s)
            k=0 len=512
            [[ $method == icl ]] && k=16 len=2048
            $Z eval --model "$model" --task "$task" --data-dir "$dir" "${counts[@]}" --split test \
                --icl $k --max-length $len --json > "$out.tmp"
            python3 - "$out.tmp" "$start" "$(date +%s)" <<'EOF'
import json, sys
path, start, end = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
r = json.loads(open(path).read().strip().splitlines()[-1])
r["seconds"] = end - start
open(path, "w").write(json.dumps(r, sort_keys=True) + "\n")
EOF
            mv "$out.tmp" "$out"
            python3 -c "import json; r = json.load(open('$out')); print('   accuracy %.4f in %ds' % (r['accuracy'], r['seconds']))"
            ;;
        *)  # a training cell: OPTIMIZER or OPTIMIZER+PEFT at the lr of the optimizer benchmark's best cell
            opt=${method%%+*}
            lr=${LR[$method]:-}
            [[ -n $lr ]] || { echo "no lr for $method: add it to LR in bench/learning.sh"; exit 2; }
            # The optimizer first (naming it resets its options); PEFT cells keep the adapter's own
            # ε (docs/peft.md), as bench/optimizers.sh does.
            spec="optimizer=$opt,eps=1e-3"
            [[ $method == *+* ]] && spec="optimizer=$opt,peft=${method#*+}"
            spec+=",lr=$lr${EXTRA[$opt]:+,${EXTRA[$opt]}}"
            # A run directory of the script before the sweep (TASK-METHOD) carries on as its cell.
            [[ -d $runs/$task-$method && ! -e $runs/$task/$spec ]] && mkdir -p "$runs/$task" && mv "$runs/$task-$method" "$runs/$task/$spec"
            sweep+=(--cell "$spec") trained+=("$method=$spec")
            ;;
        esac
    done
    ((${#sweep[@]})) || continue
    run=$runs/$task
    mkdir -p "$run"
    # The run options every training cell of the task shares.
    cat > "$run/base.json" <<JSON
{"model": "$model", "task": "$task", "data-dir": "$dir", "train-count": ${TRAIN_COUNT:-1000}, "dev-count": ${DEV_COUNT:-100},
 "test-count": ${TEST_COUNT:-200}, "data-seed": 0, "steps": $steps, "batch-size": 16, "eval-every": ${EVAL_EVERY:-50},
 "max-length": 512, "seed": 0, "optimizer": {"name": "mezo", "eps": 1e-3}}
JSON
    echo "== $task: ${trained[*]%%=*} (zotune sweep; each cell's output in $run/<cell>.log)"
    $Z sweep --config "$run/base.json" "${sweep[@]}" --out "$run" ${THREADS:+--threads $THREADS} > "$run/sweep.out" || status=$?
    for t in "${trained[@]}"; do
        method=${t%%=*} spec=${t#*=} out=$cells/$task.${t%%=*}.json
        if [[ ! -f $run/$spec/summary.json ]]; then echo "== $task $method: no summary.json (see $run/$spec.log)"; status=1; continue; fi
        cell_json "$run/$spec" "$out.tmp" "$task" "$method" "${LR[$method]}"
        mv "$out.tmp" "$out"
        python3 -c "import json; r = json.load(open('$out')); print('== $task $method: accuracy %.4f in %ds' % (r['accuracy'], r['seconds']))"
    done
done
python3 bench/learning_table.py
exit $status
