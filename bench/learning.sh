#!/usr/bin/env bash
# The learning table (MeZO paper, Table 1 style) for SmolLM2-135M-Instruct on the CPU: for each
# task, zero-shot, in-context learning (K = 16 demonstrations) and MeZO full-parameter tuning, all
# scored on the same test examples. One cell per (task, method), resumable: a finished cell's
# result (bench/results/learning/<task>.<method>.json) is not recomputed, an interrupted MeZO run
# resumes from its trajectory. Writes bench/results/learning.md and learning.svg.
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
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/common.sh
bench_setup
data=${DATA_DIR:-../shared/data}
movies=runs/data
movie_data "$movies"
model=$(smollm2_gguf)
Z=.build/release/zotune
cells=bench/results/learning
runs=runs/learning
mkdir -p "$cells" "$runs"

# Cheapest first, so an interrupted table has its short tasks.
tasks=("${@:-sst2 movies copa wsc cb wic rte boolq multirc}")
read -r -a tasks <<< "${tasks[*]}"
read -r -a methods <<< "${METHODS:-zero-shot icl mezo}"
counts=(--train-count 1000 --dev-count 100 --test-count 200 --data-seed 0)
steps=200
# Training cells' lrs: the best of bench/results/optimizers.md (100 steps on the movie snippets).
declare -A LR=([mezo]=1e-4 [zo-sgd-mmt]=1e-5 [zo-adam]=1e-3 [zo-sign]=1e-3 [zo-cons]=1e-4 [hizoo]=1e-4 [zo-muon]=1e-3
               [jaguar-sign]=1e-3 [jaguar-muon]=1e-2 [dizo]=1e-4 [mezo+lora]=3e-3 [mezo+prefix]=1e-2 [mezo+prompt]=1e-2)
declare -A EXTRA=([zo-muon]="--ns-steps 5" [jaguar-muon]="--orthogonalize-every 5")

for task in "${tasks[@]}"; do
    dir=$data; [[ $task == movies ]] && dir=$movies
    for method in "${methods[@]}"; do
        out=$cells/$task.$method.json
        if [[ -f $out ]]; then echo "== $task $method: done"; continue; fi
        echo "== $task $method"
        start=$(date +%s)
        case $method in
        zero-shot|icl)
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
            ;;
        *)  # a training cell: OPTIMIZER or OPTIMIZER+PEFT, at the lr of the optimizer benchmark's best cell
            opt=${method%%+*} peft=
            [[ $method == *+* ]] && peft=${method#*+}
            lr=${LR[$method]:-}
            [[ -n $lr ]] || { echo "no lr for $method: add it to LR in bench/learning.sh"; exit 2; }
            args=(--optimizer "$opt" --lr "$lr")
            # PEFT cells keep the adapter's own ε (docs/peft.md), as bench/optimizers.sh does.
            if [[ -n $peft ]]; then args+=(--peft "$peft"); else args+=(--eps 1e-3); fi
            run=$runs/$task-$method
            resume=(--out "$run")
            [[ -f $run/trajectory.zot ]] && resume=(--resume "$run")
            # shellcheck disable=SC2086
            $Z train --model "$model" --task "$task" --data-dir "$dir" "${counts[@]}" "${args[@]}" ${EXTRA[$opt]:-} \
                --steps $steps --batch-size 16 --eval-every 50 --max-length 512 --seed 0 \
                "${resume[@]}" | grep -v '^step ' || true
            [[ -f $run/summary.json ]] || { echo "== $task $method: no summary.json (interrupted?)"; exit 1; }
            python3 - "$run" "$out.tmp" "$task" "$method" "$lr" "$steps" <<'EOF'
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
            ;;
        esac
        mv "$out.tmp" "$out"
        python3 -c "import json; r = json.load(open('$out')); print('   accuracy %.4f in %ds' % (r['accuracy'], r['seconds']))"
    done
done
python3 bench/learning_table.py
