# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""Soak check: many mixed calls from several threads on one loaded set of parts.

One `LLaDAUniTextToImagePipeline` is loaded (the bundled tiny random-weight model by default); the editing and
understanding pipelines are built from its components and the decoder is its turbo decoder, so every thread shares
the same modules. `--calls` calls (default 200) cycle through text-to-image, editing, understanding and decoding with
varied prompts and seeds. They run once one after another (the reference), then twice from `--threads` threads
(default 4), each time in another shuffled order. Every concurrent result must equal its sequential one exactly
(codes, text, pixels).

Memory: the first concurrent pass is the warm-up (under concurrency the allocator's working set is larger than in
one thread). The resident set is sampled after every call of the second pass; after its first `--warmup` calls
(default 40) it must stay within `--max-growth-mb` (default 64 MiB) of its value then. Prints calls/s of both runs and the memory figures; exits non-zero if a check fails.

    python benchmarks/bench_soak.py
    python benchmarks/bench_soak.py --calls 24 --threads 4 --warmup 8
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image


KINDS = ("t2i", "edit", "understand", "decode")


def resident_mb() -> float:
    """The process's resident set size in MiB (Linux `/proc/self/status`)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def build_calls(model_dir: Path, count: int) -> tuple[list[tuple[str, Callable[[], object]]], object]:
    """`count` (kind, call) pairs on one loaded set of parts; each call returns what must be reproduced."""
    from diffusers_llada_uni import (
        LLaDAUniImageEditPipeline,
        LLaDAUniTextToImagePipeline,
        LLaDAUniUnderstandingPipeline,
    )

    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # the language model's block bars, from every thread
    pipe = LLaDAUniTextToImagePipeline.from_pretrained(model_dir, load_decoders=("turbo",))
    for part in (pipe, pipe.turbo_decoder):
        part.set_progress_bar_config(disable=True)
    edit = LLaDAUniImageEditPipeline(**pipe.components)
    understand = LLaDAUniUnderstandingPipeline(**pipe.components)
    decoder = pipe.turbo_decoder
    ramp = np.indices((96, 128)).sum(axis=0) % 256
    picture = Image.fromarray(np.stack([ramp, ramp[::-1], ramp[:, ::-1]], axis=-1).astype(np.uint8))
    codebook_size = pipe.processor.special_token_ids.image_codebook_size
    subjects = ["a fox", "a red house", "two boats", "a mountain lake", "a cat on a chair"]

    def t2i(i):
        out = pipe(f"{subjects[i % 5]}, picture {i}", height=256, width=256, steps=4, block_length=16,
                   generator=torch.Generator().manual_seed(i), output_type="np")
        return out.image_tokens[0].tolist(), out.images

    def edit_call(i):
        out = edit(image=picture, prompt=f"Make it look like {subjects[i % 5]}", steps=4, block_length=16,
                   image_kwargs={"edit_image_size": 256}, generator=torch.Generator().manual_seed(i),
                   output_type="np")
        return out.image_tokens[0].tolist(), out.images

    def understand_call(i):
        return understand(image=picture, prompt=f"What is in picture {i}?", steps=4, block_length=16,
                          gen_length=32).text

    def decode(i):
        codes = torch.randint(0, codebook_size, (64,), generator=torch.Generator().manual_seed(i))
        return decoder(codes, grid_size=(8, 8), generator=torch.Generator().manual_seed(i), output_type="np").images

    makers = {"t2i": t2i, "edit": edit_call, "understand": understand_call, "decode": decode}
    calls = [(KINDS[i % 4], (lambda f, i: (lambda: f(i)))(makers[KINDS[i % 4]], i)) for i in range(count)]
    return calls, pipe


def same(a, b) -> bool:
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.shape == b.shape and np.array_equal(a, b)
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    return a == b


def run(calls, threads: int, warmup: int, seed: int = 0) -> dict:
    """Sequential reference, then two concurrent passes over every call (shuffled differently): the first is the
    warm-up (the allocator reaches its working set under concurrency), the second is measured. `warmup` calls of
    the measured pass are its own warm-up for the memory baseline."""
    start = time.perf_counter()
    reference = [call() for _, call in calls]
    sequential_s = time.perf_counter() - start

    lock = threading.Lock()

    def concurrent_pass(order_seed: int, samples: list[float]) -> tuple[list, float]:
        order = list(range(len(calls)))
        random.Random(order_seed).shuffle(order)
        results: list = [None] * len(calls)

        def one(index):
            results[index] = calls[index][1]()
            with lock:
                samples.append(resident_mb())

        begin = time.perf_counter()
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(one, order))
        return results, time.perf_counter() - begin

    warmup_samples: list[float] = []
    first, _ = concurrent_pass(seed, warmup_samples)
    samples: list[float] = []
    second, concurrent_s = concurrent_pass(seed + 1, samples)
    mismatched = [(i, calls[i][0], pass_name) for pass_name, results in (("warm-up", first), ("measured", second))
                  for i in range(len(calls)) if not same(reference[i], results[i])]
    after_warmup = samples[warmup - 1] if len(samples) >= warmup else samples[-1]
    later = samples[warmup:] or [after_warmup]
    return {
        "calls": len(calls),
        "kinds": {kind: sum(1 for k, _ in calls if k == kind) for kind in KINDS},
        "threads": threads,
        "sequential_s": sequential_s,
        "concurrent_s": concurrent_s,
        "mismatched": mismatched,
        "rss_end_of_first_pass_mb": warmup_samples[-1],
        "rss_after_warmup_mb": after_warmup,
        "rss_max_after_warmup_mb": max(later),
        "rss_end_mb": samples[-1],
        "rss_trend_mb": [samples[min(len(samples) - 1, round(q * (len(samples) - 1)))] for q in
                         (0.2, 0.4, 0.6, 0.8, 1.0)],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None, help="a converted or released folder (default: the demo)")
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=40)
    parser.add_argument("--max-growth-mb", type=float, default=64.0)
    args = parser.parse_args(argv)
    if args.calls < 4 or args.threads < 1 or not 1 <= args.warmup < args.calls:
        parser.error("need --calls >= 4, --threads >= 1 and 1 <= --warmup < --calls")
    torch.set_num_threads(1)  # the threads, not intra-op parallelism, are what is soaked
    from llada_uni_cli import DEMO_MODEL_DIR

    calls, _ = build_calls(args.model or DEMO_MODEL_DIR, args.calls)
    figures = run(calls, args.threads, args.warmup)
    growth = figures["rss_max_after_warmup_mb"] - figures["rss_after_warmup_mb"]
    print(f"{figures['calls']} calls {figures['kinds']} from {figures['threads']} threads")
    print(f"sequential: {figures['sequential_s']:.1f} s ({figures['calls'] / figures['sequential_s']:.2f} calls/s); "
          f"concurrent: {figures['concurrent_s']:.1f} s ({figures['calls'] / figures['concurrent_s']:.2f} calls/s)")
    equal = 2 * figures["calls"] - len(figures["mismatched"])
    print(f"outputs equal to the sequential run: {equal} / {2 * figures['calls']} (two concurrent passes)")
    print(f"resident memory: {figures['rss_end_of_first_pass_mb']:.0f} MiB after the warm-up pass; measured pass: "
          f"{figures['rss_after_warmup_mb']:.0f} MiB after {args.warmup} calls, at most "
          f"{figures['rss_max_after_warmup_mb']:.0f} MiB later (+{growth:.0f} MiB), {figures['rss_end_mb']:.0f} MiB "
          "at the end")
    print("resident memory at 20 / 40 / 60 / 80 / 100 % of the concurrent run: "
          + " / ".join(f"{value:.0f}" for value in figures["rss_trend_mb"]) + " MiB")
    failed = bool(figures["mismatched"]) or growth > args.max_growth_mb
    if figures["mismatched"]:
        print(f"MISMATCH: {figures['mismatched'][:10]}", file=sys.stderr)
    if growth > args.max_growth_mb:
        print(f"MEMORY GREW by {growth:.0f} MiB (> {args.max_growth_mb:.0f})", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
