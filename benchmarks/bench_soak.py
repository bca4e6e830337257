# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""Soak check: many mixed calls from several threads on one loaded set of parts.

One `LLaDAUniTextToImagePipeline` is loaded (the bundled tiny random-weight model by default); the editing and
understanding pipelines are built from its components and the decoder is its turbo decoder, so every thread shares
the same modules. `--calls` calls (default 200) cycle through text-to-image, editing, understanding and decoding with
varied prompts and seeds. They run once one after another (the reference), then in `--warmup-passes` (default 1)
and `--passes` (default 2) concurrent passes, each in another shuffled order, on one pool of `--threads` (default 4)
worker threads kept for the whole run, as a server keeps its workers. Every concurrent result must equal its
sequential one exactly (codes, text, pixels).

Memory is taken at the end of every concurrent pass, after `gc.collect()`, and compared with the end of the warm-up:

- what the process keeps: live Python objects (`gc`), live tensors (count and storage bytes) and, under glibc, the
  bytes malloc has handed out and not got back (`mallinfo2`: in-use chunks and mmapped ones). Anything kept per call
  or per thread grows these. Checked: no more live tensors or tensor bytes, fewer new Python objects than calls in a
  pass, malloc in-use bytes within `--max-growth-mb` (default 4 MiB, 20 KiB a call of a 200-call pass).
- the resident set (VmRSS), its peak during the pass, and the part of it that is not glibc malloc's cache of freed
  memory (VmRSS less `mallinfo2().fordblks`), checked within `--max-growth-mb`. The raw VmRSS is printed but not
  checked: with several threads glibc serves each from its own arena and, once a freed large block has raised its
  dynamic mmap threshold, keeps tensor-sized freed blocks in those arenas for reuse, so VmRSS wanders by about a
  hundred MiB from pass to pass with the live memory flat. After the last pass `malloc_trim(0)` shows how much of it
  the allocator returns. With the dynamic threshold off (`MALLOC_MMAP_THRESHOLD_=131072` in the environment) the raw
  VmRSS stays flat too, within a MiB or two, at the cost of slower calls (every large tensor is a fresh mmap).

malloc's in-use bytes include the per-thread caches of small freed blocks (tcache), which fill over the first passes:
some KiB a pass that shrink towards zero, far inside the bound.

Prints calls/s of the sequential and concurrent runs and the figures of every pass; exits non-zero if a check fails.
Without glibc (`mallinfo2`) the allocator figures are skipped and only the object and tensor counts are checked.

    python benchmarks/bench_soak.py
    python benchmarks/bench_soak.py --calls 40 --threads 4 --passes 3
"""

from __future__ import annotations

import argparse
import ctypes
import gc
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


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


def _glibc_function(name: str, restype):
    """A glibc malloc function of this process, or None (another C library, or glibc older than 2.33)."""
    try:
        function = getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None
    function.restype = restype
    return function


_mallinfo2 = _glibc_function("mallinfo2", _Mallinfo2)
_malloc_trim = _glibc_function("malloc_trim", ctypes.c_int)


def memory_snapshot() -> dict:
    """What the process holds now, after a full garbage collection (see the module docstring)."""
    gc.collect()
    storages: dict[int, int] = {}
    tensors = 0
    for obj in gc.get_objects():
        # `type()`, not `isinstance`: deprecated torch proxies warn when their `__class__` is read.
        if issubclass(type(obj), torch.Tensor):
            tensors += 1
            try:
                storage = obj.untyped_storage()
                storages[storage.data_ptr()] = storage.nbytes()
            except (RuntimeError, NotImplementedError):
                pass  # no memory of its own (a fake tensor left by a traced model elsewhere in the process, sparse)
    obj = storage = None  # the loop's last ones, not kept into the count
    # Counted after the tensors: torch keeps the Python storage objects made above while their tensor lives, so
    # counting first would show them as new objects in the next snapshot.
    gc.collect()
    snapshot = {"rss_mb": resident_mb(), "objects": len(gc.get_objects()), "tensors": tensors,
                "tensor_mb": sum(storages.values()) / 2**20}
    if _mallinfo2 is not None:
        info = _mallinfo2()
        snapshot["malloc_in_use_mb"] = (info.uordblks + info.hblkhd) / 2**20
        snapshot["malloc_cached_mb"] = info.fordblks / 2**20
        snapshot["rss_net_mb"] = snapshot["rss_mb"] - snapshot["malloc_cached_mb"]
    return snapshot


def run(calls, threads: int, warmup_passes: int = 1, passes: int = 2, seed: int = 0) -> dict:
    """The sequential reference, then `warmup_passes + passes` concurrent passes over every call, each in another
    shuffled order, on one pool of `threads` workers; a memory snapshot after each concurrent pass."""
    start = time.perf_counter()
    reference = [call() for _, call in calls]
    sequential_s = time.perf_counter() - start

    lock = threading.Lock()
    workers: set[threading.Thread] = set()
    concurrent = []
    mismatched = []
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for number in range(warmup_passes + passes):
            order = list(range(len(calls)))
            random.Random(seed + number).shuffle(order)
            results: list = [None] * len(calls)
            peak = [0.0]

            def one(index):
                results[index] = calls[index][1]()
                rss = resident_mb()
                with lock:
                    workers.add(threading.current_thread())
                    peak[0] = max(peak[0], rss)

            begin = time.perf_counter()
            list(pool.map(one, order))
            seconds = time.perf_counter() - begin
            mismatched += [(number, i, calls[i][0]) for i in range(len(calls)) if not same(reference[i], results[i])]
            del results
            concurrent.append({"warmup": number < warmup_passes, "seconds": seconds, "rss_peak_mb": peak[0],
                               **memory_snapshot()})
    trimmed_rss_mb = None
    if _malloc_trim is not None:
        _malloc_trim(0)
        trimmed_rss_mb = resident_mb()
    return {
        "calls": len(calls),
        "kinds": {kind: sum(1 for k, _ in calls if k == kind) for kind in KINDS},
        "threads": threads,
        "workers_seen": len(workers),
        "sequential_s": sequential_s,
        "passes": concurrent,
        "mismatched": mismatched,
        "rss_after_malloc_trim_mb": trimmed_rss_mb,
    }


def memory_failures(figures: dict, max_growth_mb: float) -> list[str]:
    """What grew in a measured pass beyond its bound, against the end of the last warm-up pass."""
    passes = figures["passes"]
    base = [p for p in passes if p["warmup"]][-1]
    failures = []
    for number, p in enumerate(passes):
        if p["warmup"]:
            continue
        if p["tensors"] > base["tensors"] or p["tensor_mb"] > base["tensor_mb"]:
            failures.append(f"pass {number}: live tensors {base['tensors']} ({base['tensor_mb']:.2f} MiB) -> "
                            f"{p['tensors']} ({p['tensor_mb']:.2f} MiB)")
        if p["objects"] - base["objects"] >= figures["calls"]:
            failures.append(f"pass {number}: {p['objects'] - base['objects']} more live Python objects "
                            f"(>= one per call)")
        for key, name in (("malloc_in_use_mb", "malloc in-use bytes"),
                          ("rss_net_mb", "resident set less malloc's cache")):
            if key in p and p[key] - base[key] > max_growth_mb:
                failures.append(f"pass {number}: {name} grew by {p[key] - base[key]:.1f} MiB (> {max_growth_mb:g})")
    return failures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None, help="a converted or released folder (default: the demo)")
    parser.add_argument("--calls", type=int, default=200, help="calls in a pass")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--warmup-passes", type=int, default=1)
    parser.add_argument("--passes", type=int, default=2, help="measured concurrent passes")
    parser.add_argument("--max-growth-mb", type=float, default=4.0)
    args = parser.parse_args(argv)
    if args.calls < 4 or args.threads < 1 or args.warmup_passes < 1 or args.passes < 1:
        parser.error("need --calls >= 4, --threads >= 1, --warmup-passes >= 1 and --passes >= 1")
    torch.set_num_threads(1)  # the threads, not intra-op parallelism, are what is soaked
    from llada_uni_cli import DEMO_MODEL_DIR

    calls, _ = build_calls(args.model or DEMO_MODEL_DIR, args.calls)
    figures = run(calls, args.threads, args.warmup_passes, args.passes)
    calls_n, passes = figures["calls"], figures["passes"]
    measured = [p for p in passes if not p["warmup"]]
    concurrent_s = sum(p["seconds"] for p in measured)
    print(f"{calls_n} calls a pass {figures['kinds']} from a pool of {figures['threads']} threads "
          f"({figures['workers_seen']} worker threads seen over {len(passes)} concurrent passes)")
    print(f"sequential: {figures['sequential_s']:.1f} s ({calls_n / figures['sequential_s']:.2f} calls/s); "
          f"concurrent, measured passes: {concurrent_s:.1f} s ({len(measured) * calls_n / concurrent_s:.2f} calls/s)")
    equal = len(passes) * calls_n - len(figures["mismatched"])
    print(f"outputs equal to the sequential run: {equal} / {len(passes) * calls_n} ({len(passes)} concurrent passes)")
    for number, p in enumerate(passes):
        line = (f"pass {number} ({'warm-up' if p['warmup'] else 'measured'}): {calls_n / p['seconds']:.2f} calls/s; "
                f"VmRSS peak {p['rss_peak_mb']:.0f}, end {p['rss_mb']:.0f} MiB")
        if "rss_net_mb" in p:
            line += (f" = malloc cache {p['malloc_cached_mb']:.0f} + rest {p['rss_net_mb']:.1f} MiB; "
                     f"malloc in use {p['malloc_in_use_mb']:.2f} MiB")
        line += f"; {p['objects']} Python objects, {p['tensors']} tensors ({p['tensor_mb']:.2f} MiB)"
        print(line)
    base, last = [p for p in passes if p["warmup"]][-1], passes[-1]
    growth = (f"after the warm-up to the last pass: {last['tensors'] - base['tensors']:+d} tensors "
              f"({last['tensor_mb'] - base['tensor_mb']:+.2f} MiB), "
              f"{last['objects'] - base['objects']:+d} Python objects")
    if "rss_net_mb" in last:
        growth += (f", malloc in use {last['malloc_in_use_mb'] - base['malloc_in_use_mb']:+.2f} MiB, "
                   f"VmRSS less malloc's cache {last['rss_net_mb'] - base['rss_net_mb']:+.1f} MiB "
                   f"(bound {args.max_growth_mb:g} MiB a pass)")
    print(growth + f"; raw VmRSS {last['rss_mb'] - base['rss_mb']:+.0f} MiB (not checked)")
    if figures["rss_after_malloc_trim_mb"] is not None:
        print(f"VmRSS after malloc_trim(0): {figures['rss_after_malloc_trim_mb']:.0f} MiB")
    else:
        print("no glibc mallinfo2: allocator figures skipped, only object and tensor counts checked")
    failures = memory_failures(figures, args.max_growth_mb)
    if figures["mismatched"]:
        print(f"MISMATCH (pass, call, kind): {figures['mismatched'][:10]}", file=sys.stderr)
    for failure in failures:
        print(f"MEMORY GREW: {failure}", file=sys.stderr)
    return 1 if figures["mismatched"] or failures else 0


if __name__ == "__main__":
    sys.exit(main())
