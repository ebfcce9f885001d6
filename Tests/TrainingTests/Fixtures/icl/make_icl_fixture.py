"""Writes prompts.json: in-context prompts built by MeZO's rules (large_models/templates.py and
utils.py encode_prompt), independently of ZOTune, from the task fixtures in ../tasks.

For each case: the task, the fixture file, which records are the demonstrations (in order) and
which is evaluated, and MeZO's final text per candidate:
    demos = "\n\n".join(verbalize(d, d.correct).strip() for d in demos).strip()
    final = (demos + "\n\n" + verbalize(eval, c).strip(' ')).lstrip().strip(' ')
and, for generation, (demos + "\n\n" + encode(eval).strip(' ')).lstrip().strip(' ').
Run: python3 make_icl_fixture.py   (standard library only)."""
import csv
import json
import os
import sys


# record_versions: Tests/fixture_versions.py, shared by the fixture scripts.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../.."))
from fixture_versions import record_versions  # noqa: E402


here = os.path.dirname(os.path.abspath(__file__))
tasks = os.path.join(here, "..", "tasks")
SEP = "\n\n"


def sst2(r):
    text = r["sentence"].strip()
    enc = f"{text} It was"
    return enc, [f"{enc} {v}" for v in ("terrible", "great")], int(r["label"])


def rte(r):
    enc = f"{r['premise']}\nDoes this mean that \"{r['hypothesis']}\" is true? Yes or No?\n"
    return enc, [enc + v for v in ("Yes", "No")], ["entailment", "not_entailment"].index(r["label"])


def copa(r):
    conj = {"effect": " so", "cause": " because"}[r["question"]]
    prompt = r["premise"][:-1] + conj

    def cap(c):
        words = c.split(" ")
        if words[0] != "I":
            words[0] = words[0].lower()
        return " ".join(words)
    return prompt, [prompt + " " + cap(r[k]) for k in ("choice1", "choice2")], int(r["label"])


def squad_records():
    doc = json.load(open(os.path.join(tasks, "SQuAD/dev-v1.1.json")))
    for art in doc["data"]:
        for p in art["paragraphs"]:
            for qa in p["qas"]:
                yield {"title": art["title"], "context": p["context"], "question": qa["question"],
                       "answers": [a["text"] for a in qa["answers"]]}


def squad(r):
    enc = f"Title: {r['title']}\nContext: {r['context']}\nQuestion: {r['question'].strip()}\nAnswer:"
    return enc, None, f"{enc} {r['answers'][0]}\n"


def jsonl(path):
    return [json.loads(l) for l in open(os.path.join(tasks, path)) if l.strip()]


def tsv(path):
    with open(os.path.join(tasks, path), newline="") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def case(task, file, records, render, demos, evaluated):
    demo_texts = []
    for i in demos:
        enc, options, y = render(records[i])
        demo_texts.append((options[y] if options else y).strip())
    train_prompts = SEP.join(demo_texts).strip()
    enc, options, _ = render(records[evaluated])
    if options:
        final = [(train_prompts + SEP + o.strip(" ")).lstrip().strip(" ") for o in options]
    else:
        final = [(train_prompts + SEP + enc.strip(" ")).lstrip().strip(" ")]
    return {"task": task, "file": file, "demonstrations": demos, "evaluated": evaluated,
            "generation": options is None, "final": final}


cases = [
    case("sst2", "SST-2/train.tsv", tsv("SST-2/train.tsv"), sst2, [3, 0, 5], 7),
    case("sst2", "SST-2/train.tsv", tsv("SST-2/train.tsv"), sst2, [], 2),
    case("rte", "RTE/train.jsonl", jsonl("RTE/train.jsonl"), rte, [1, 2], 0),
    case("copa", "COPA/train.jsonl", jsonl("COPA/train.jsonl"), copa, [2, 0], 1),
    case("squad", "SQuAD/dev-v1.1.json", list(squad_records()), squad, [1, 2], 0),
]
with open(os.path.join(here, "prompts.json"), "w") as f:
    json.dump(cases, f, indent=1, ensure_ascii=False)
    f.write("\n")
print(f"{len(cases)} cases")
record_versions(__file__)
