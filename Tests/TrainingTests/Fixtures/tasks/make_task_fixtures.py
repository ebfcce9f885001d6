#!/usr/bin/env python3
"""Writes the synthetic task fixtures (original file formats, invented text) used by TaskTests.
Run from this directory: python3 make_task_fixtures.py"""
import json, os, sys


# record_versions: Tests/fixture_versions.py, shared by the fixture scripts.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../.."))
from fixture_versions import record_versions  # noqa: E402


HERE = os.path.dirname(os.path.abspath(__file__))


def write(rel, text, mode="w", newline="\n"):
    path = os.path.join(HERE, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, mode, encoding=None if "b" in mode else "utf-8", newline=None if "b" in mode else newline) as f:
        f.write(text)


def jsonl(rel, rows):
    write(rel, "".join(json.dumps(r) + "\n" for r in rows))


# SST-2: GLUE TSV with the trailing space GLUE keeps on each sentence.
pos = ["a warm , funny and moving picture", "the cast is superb", "an unexpected delight", "sharp writing and real heart",
       "one of the year 's best", "it soars"]
neg = ["a tedious , overlong mess", "the plot never comes together", "flat and lifeless", "a waste of a fine cast",
       "dull from start to finish", "it sinks"]
train = [(pos[i // 2], 1) if i % 2 == 0 else (neg[i // 2], 0) for i in range(12)]
write("SST-2/train.tsv", "sentence\tlabel\n" + "".join(f"{s} \t{y}\n" for s, y in train))
dev = [("quietly brilliant", 1), ("a chore to sit through", 0), ("pure joy", 1), ("instantly forgettable", 0),
       ("a triumph", 1), ("no surprises , no laughs", 0), ("gorgeous to look at", 1), ("badly acted", 0)]
write("SST-2/dev.tsv", "sentence\tlabel\n" + "".join(f"{s} \t{y}\n" for s, y in dev))

# RTE / CB
rte = [{"premise": f"The river town of Alder{i} opened a new bridge in {1990 + i}.",
        "hypothesis": f"Alder{i} has a bridge." if i % 2 == 0 else f"Alder{i} closed its bridge.",
        "label": "entailment" if i % 2 == 0 else "not_entailment", "idx": i} for i in range(18)]
jsonl("RTE/train.jsonl", rte[:10])
jsonl("RTE/val.jsonl", [dict(r, idx=i) for i, r in enumerate(rte[10:])])
cb_labels = ["entailment", "contradiction", "neutral"]
cb = [{"premise": f"Mara said the kettle was on. I think number {i} was boiling.",
       "hypothesis": f"number {i} was boiling", "label": cb_labels[i % 3], "idx": i} for i in range(12)]
jsonl("CB/train.jsonl", cb[:6])
jsonl("CB/val.jsonl", [dict(r, idx=i) for i, r in enumerate(cb[6:])])

# COPA
copa = [
    {"premise": "The glass fell off the shelf.", "choice1": "It shattered on the floor.", "choice2": "It filled with water.", "question": "effect", "label": 0},
    {"premise": "I turned on the fan.", "choice1": "I was hot.", "choice2": "I was hungry.", "question": "cause", "label": 0},
    {"premise": "The street was flooded.", "choice1": "The sun came out.", "choice2": "Heavy rain fell all night.", "question": "cause", "label": 1},
    {"premise": "The baby cried.", "choice1": "Her mother picked her up.", "choice2": "Her mother left the house.", "question": "effect", "label": 0},
    {"premise": "The bread went stale.", "choice1": "It was left out uncovered.", "choice2": "It was kept in a bag.", "question": "cause", "label": 0},
    {"premise": "The lights went out", "choice1": "We lit candles.", "choice2": "We opened the fridge.", "question": "effect", "label": 0},
    {"premise": "My phone died.", "choice1": "I forgot to charge it.", "choice2": "I charged it overnight.", "question": "cause", "label": 0},
    {"premise": "The crowd cheered.", "choice1": "The team scored.", "choice2": "The game was delayed.", "question": "cause", "label": 0},
    {"premise": "The ice melted.", "choice1": "I put it in the freezer.", "choice2": "I left it in the sun.", "question": "cause", "label": 1},
    {"premise": "The door was locked.", "choice1": "I used my key.", "choice2": "I painted it.", "question": "effect", "label": 0},
]
jsonl("COPA/train.jsonl", [dict(r, idx=i) for i, r in enumerate(copa[:6])])
jsonl("COPA/val.jsonl", [dict(r, idx=i) for i, r in enumerate(copa[6:])])

# WiC
wic = [{"word": w, "sentence1": s1, "sentence2": s2, "idx": i, "label": y, "start1": 0, "start2": 0, "end1": 1, "end2": 1, "version": 1.1}
       for i, (w, s1, s2, y) in enumerate([
           ("bank", "She sat on the river bank.", "He robbed the bank.", False),
           ("run", "I run every morning.", "We run five miles.", True),
           ("light", "The box is light.", "Turn on the light.", False),
           ("play", "The children play outside.", "They play in the yard.", True),
           ("cold", "I caught a cold.", "The water is cold.", False),
           ("draw", "Draw a circle.", "She likes to draw.", True),
           ("bat", "A bat flew by.", "He swung the bat.", False),
           ("ring", "Her ring is gold.", "The ring on her finger.", True)])]
jsonl("WiC/train.jsonl", wic[:4])
jsonl("WiC/val.jsonl", wic[4:])

# WSC (SuperGLUE; the third train row needs the wsc.fixed case repair)
wsc = [
    {"text": "Tom thanked Sam because he had helped him.", "target": {"span2_index": 4, "span1_index": 2, "span1_text": "Sam", "span2_text": "he"}, "label": True},
    {"text": "Tom thanked Sam because he had helped him.", "target": {"span2_index": 4, "span1_index": 0, "span1_text": "Tom", "span2_text": "he"}, "label": False},
    {"text": "The table would not fit through the door because it was too wide.", "target": {"span2_index": 9, "span1_index": 0, "span1_text": "the table.", "span2_text": "It"}, "label": True},
    {"text": "Ann called Beth, but she did not answer.", "target": {"span2_index": 4, "span1_index": 2, "span1_text": "Beth", "span2_text": "she"}, "label": True},
    {"text": "The cup sat on the box until it was moved.", "target": {"span2_index": 7, "span1_index": 0, "span1_text": "The cup", "span2_text": "it"}, "label": True},
    {"text": "Joe lent Ian a pen since he had two.", "target": {"span2_index": 6, "span1_index": 3, "span1_text": "Ian", "span2_text": "he"}, "label": False},
    {"text": "Kim told Lee that she was late.", "target": {"span2_index": 4, "span1_index": 0, "span1_text": "Kim", "span2_text": "She"}, "label": True},
    {"text": "The dog chased the cat until it got tired.", "target": {"span2_index": 6, "span1_index": 1, "span1_text": "dog", "span2_text": "it"}, "label": True},
]
jsonl("WSC/train.jsonl", [dict(r, idx=i) for i, r in enumerate(wsc[:4])])
jsonl("WSC/val.jsonl", [dict(r, idx=i) for i, r in enumerate(wsc[4:])])

# MultiRC: one paragraph per line, one example per answer.
def para(idx, text, qs):
    out, aidx = [], 0
    for qi, (q, answers) in enumerate(qs):
        ans = []
        for t, y in answers:
            ans.append({"text": t, "idx": aidx, "label": y}); aidx += 1
        out.append({"question": q, "answers": ans, "idx": qi})
    return {"idx": idx, "version": 1.1, "passage": {"text": text, "questions": out}}
mrc_train = [
    para(0, "<b>Sent 1: </b>Lena grew tomatoes.<br><b>Sent 2: </b>She sold them at the market.<br>",
         [("What did Lena grow?", [("Tomatoes", 1), ("Potatoes", 0)]), ("Where did she sell them?", [("At the market", 1), ("Online", 0)])]),
    para(1, "<b>Sent 1: </b>The bus was late.<br><b>Sent 2: </b>Omar walked to work.<br>",
         [("How did Omar get to work?", [("He walked", 1), ("By bus", 0), ("On foot", 1)])]),
]
mrc_val = [para(0, "<b>Sent 1: </b>Rain fell for days.<br><b>Sent 2: </b>The river rose.<br>",
                [("Why did the river rise?", [("Rain fell for days", 1), ("Snow melted", 0)]),
                 ("What rose?", [("The river", 1), ("The sea", 0), ("The water level of the river", 1)])])]
jsonl("MultiRC/train.jsonl", mrc_train)
jsonl("MultiRC/val.jsonl", mrc_val)

# BoolQ: SuperGLUE form "<title> -- <text>"; FewGLUE train subset.
boolq = [{"question": q, "passage": p, "idx": i, "label": y} for i, (q, p, y) in enumerate([
    ("is the moon a planet", "Moon -- The Moon is Earth's only natural satellite.", False),
    ("do penguins live in the arctic", "Penguin -- Penguins live almost exclusively in the Southern Hemisphere.", False),
    ("is water wet", "Water -- Water is a liquid at room temperature.", True),
    ("can ostriches fly", "Ostrich -- Ostriches are flightless birds.", False),
    ("is paris in france", "Paris -- Paris is the capital of France.", True),
    ("is a tomato a fruit", "Tomato -- The tomato is the edible berry of the plant.", True),
    ("does the sun rise in the east", "Sunrise -- The Sun rises in the east.", True),
    ("is gold magnetic", "Gold -- Gold is not magnetic.", False)])]
jsonl("BoolQ/val.jsonl", boolq[:6])
jsonl("BoolQ/FewGLUE/train.jsonl", boolq[6:] + [{"question": "is tea a drink?", "passage": "Tea -- Tea is an aromatic beverage -- hot or iced.", "idx": 9, "label": True}])

# ReCoRD: entity offsets in code points, end inclusive.
def record(idx, text, names, query, answer, qidx):
    ents = []
    for n in names:
        s = 0
        while True:
            s = text.find(n, s)
            if s < 0: break
            ents.append({"start": s, "end": s + len(n) - 1}); s += len(n)
    ans = [{"start": e["start"], "end": e["end"], "text": answer} for e in ents if text[e["start"]:e["end"] + 1] == answer]
    return {"source": "Synthetic", "passage": {"text": text, "entities": ents}, "qas": [{"query": query, "answers": ans, "idx": qidx}], "idx": idx}
jsonl("ReCoRD/FewGLUE/train.jsonl", [
    record(0, "Zoë Park won the Riverton marathon on Sunday.\n@highlight\nZoë Park wins in Riverton\n@highlight\nRecord crowd at Riverton",
           ["Zoë Park", "Riverton"], "@placeholder crossed the line first.", "Zoë Park", 0),
    record(1, "Acme Corp bought Beta Labs.\n@highlight\nAcme Corp expands", ["Acme Corp", "Beta Labs"], "Shares of @placeholder rose.", "Acme Corp", 1),
])
jsonl("ReCoRD/FewGLUE_32dev/dev32.jsonl", [
    record(2, "Mount Kell erupted near Ostend.\n@highlight\nOstend evacuated", ["Mount Kell", "Ostend"], "Residents of @placeholder left.", "Ostend", 2),
    record(3, "Lyra Hale joined the Comets.\n@highlight\nComets sign Hale", ["Lyra Hale", "Comets", "Hale"], "The @placeholder won again.", "Comets", 3),
    record(4, "Ivo Rant scored twice for Delft.\n@highlight\nDelft win", ["Ivo Rant", "Delft"], "@placeholder scored twice.", "Ivo Rant", 4),
])

# SQuAD v1.1
squad = {"version": "1.1", "data": [
    {"title": "Harbor_Town", "paragraphs": [
        {"context": "Harbor Town was founded in 1802 by fishermen. Its lighthouse is painted red.",
         "qas": [{"answers": [{"answer_start": 27, "text": "1802"}, {"answer_start": 27, "text": "1802"}], "question": "When was Harbor Town founded?", "id": "q1"},
                 {"answers": [{"answer_start": 35, "text": "fishermen"}], "question": " Who founded Harbor Town? ", "id": "q2"},
                 {"answers": [{"answer_start": 71, "text": "red"}, {"answer_start": 60, "text": "painted red"}], "question": "What color is the lighthouse?", "id": "q3"}]}]},
    {"title": "Glass", "paragraphs": [
        {"context": "Glass is made mostly from sand.",
         "qas": [{"answers": [{"answer_start": 26, "text": "sand"}], "question": "What is glass made from?", "id": "q4"},
                 {"answers": [{"answer_start": 0, "text": "Glass"}], "question": "What is made mostly from sand?", "id": "q5"}]}]}]}
write("SQuAD/dev-v1.1.json", json.dumps(squad))

# DROP: {passage_id: {passage, qa_pairs}}
def ans(number="", date=None, spans=()):
    return {"number": number, "date": date or {"day": "", "month": "", "year": ""}, "spans": list(spans)}
drop_dev = {
    "nfl_1": {"passage": "The Hawks scored 3 touchdowns. Kicker Ben Ode made a 40-yard field goal on 9 March 2001.",
              "qa_pairs": [
                  {"question": "How many touchdowns did the Hawks score?", "query_id": "d1", "answer": ans("3"), "validated_answers": [ans("3"), ans("3")]},
                  {"question": "Who made the field goal? ", "query_id": "d2", "answer": ans(spans=["Ben Ode"]), "validated_answers": [ans(spans=["Ben Ode"])]},
                  {"question": "When was the field goal?", "query_id": "d3", "answer": ans(date={"day": "9", "month": "March", "year": "2001"}),
                   "validated_answers": [ans(date={"day": "", "month": "March", "year": "2001"})]},
                  {"question": "Unanswerable?", "query_id": "d4", "answer": ans(), "validated_answers": []}]},
    "history_2": {"passage": "The treaty was signed by Arlo and Brisk in 1650.",
                  "qa_pairs": [{"question": "Who signed the treaty?", "query_id": "d5", "answer": ans(spans=["Arlo", "Brisk"]),
                                "validated_answers": [ans(spans=["Arlo", "Brisk"])]}]}}
drop_train = {
    "nfl_9": {"passage": "The Owls won by 7 points.",
              "qa_pairs": [{"question": "By how many points did the Owls win?", "query_id": "t1", "answer": ans("7"), "validated_answers": []}]}}
write("DROP/drop_dataset_dev.json", json.dumps(drop_dev, indent=1))
write("DROP/drop_dataset_train.json", json.dumps(drop_train, indent=1))

# WinoGrande dev (five public fields)
wg = [{"qID": f"WG{i}-{a}", "sentence": s, "option1": o1, "option2": o2, "answer": a} for i, (s, o1, o2, a) in enumerate([
    ("Nina lent her coat to Jo because _ was cold.", "Nina", "Jo", "2"),
    ("Nina lent her coat to Jo because _ was warm enough.", "Nina", "Jo", "1"),
    ("The trophy did not fit in the case because the _ was too big.", "trophy", "case", "1"),
    ("The trophy did not fit in the case because the _ was too small.", "trophy", "case", "2"),
    ("Ray beat Sol at chess, so _ was happy.", "Ray", "Sol", "1"),
    ("Ray beat Sol at chess, so _ was sad.", "Ray", "Sol", "2"),
    ("The cat hid from the dog because the _ was scared.", "cat", "dog", "1"),
    ("The cat hid from the dog because the _ was scary.", "cat", "dog", "2"),
    ("Eli paid Max since _ owed money.", "Eli", "Max", "1"),
    ("Eli paid Max since _ was owed money.", "Eli", "Max", "2")])]
jsonl("WinoGrande/dev.jsonl", wg)

# Movie snippets: id<TAB>mean score<TAB>sentence, CRLF, one zero score, one Windows-1252 line
# (0x92 = right single quote), one UTF-8 line, no final newline.
rows = [(1, "2.5", "A sweet, funny film that earns its tears."), (2, "-1.75", "The plot is a mess and the jokes fall flat."),
        (3, "0.0", "It is a movie about a boat."), (4, "3.1", "Clich\u00e9s aside, a lovely ride."),
        (5, "-2.2", None), (6, "1.2", "Warm and well acted."), (7, "-0.4", "Too long by half."),
        (8, "1.9", "A joy."), (9, "-3.0", "Painful."), (10, "0.5", "Modest but charming."),
        (11, "-1.1", "Forgettable."), (12, "2.0", "Smart, brisk and kind."), (13, "-2.6", "A slog."),
        (14, "1.4", "Quietly moving."), (15, "-0.9", "Drab."), (16, "2.8", "Great fun."),
        (17, "-1.6", "Hollow at the core."), (18, "0.7", "Pleasant enough."), (19, "-2.0", "Dull, dull, dull."),
        (20, "1.0", "Worth a look.")]
data = b""
for i, score, text in rows:
    line = (f"{i}\t{score}\t".encode() + (text.encode("utf-8") if text else b"It\x92s a disaster from start to finish."))
    data += line + (b"\r\n" if i != 20 else b"")
write("movies/movieReviewSnippets_GroundTruth.txt", data, mode="wb")
record_versions(__file__)
