#!/usr/bin/env python3
"""The PyTorch side of bench/forward.sh: one f32 CPU forward of a GGUF model through transformers,
on random tokens of the given shape, with the same thread count as ZOTune. Prints one JSON line
with forward_s (median), tokens_per_s and peak_rss_bytes. Reference only: never used at run time."""
import argparse, json, os, resource, statistics, time

import torch
from transformers import AutoModelForCausalLM

p = argparse.ArgumentParser()
p.add_argument("--model", required=True, help="path to a .gguf file")
p.add_argument("--batch-size", type=int, default=16)
p.add_argument("--seq-len", type=int, default=64)
p.add_argument("--threads", type=int, default=os.cpu_count())
p.add_argument("--repeats", type=int, default=5)
a = p.parse_args()

torch.set_num_threads(a.threads)
d, f = os.path.split(os.path.abspath(a.model))
model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32).eval()
g = torch.Generator().manual_seed(0)
ids = torch.randint(0, model.config.vocab_size, (a.batch_size, a.seq_len), generator=g)
times = []
with torch.inference_mode():
    model(ids)  # warm-up
    for _ in range(a.repeats):
        t = time.perf_counter()
        model(ids)
        times.append(time.perf_counter() - t)
s = statistics.median(times)
print(json.dumps({"forward_s": s, "tokens_per_s": a.batch_size * a.seq_len / s, "threads": a.threads,
                  "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "torch": torch.__version__}))
