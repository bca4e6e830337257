# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""Mixed calls from several threads on one loaded set of parts equal the same calls made one after another.

A short run of `benchmarks/bench_soak.py`: eight calls, one concurrent warm-up pass and one measured pass on a pool of
four threads. The benchmark's 200-call run also bounds the allocator figures; here what a leak would grow whatever the
pass length is checked: live tensors and Python objects after the measured pass against after the warm-up.
"""

import importlib.util

from conftest import FIXTURES


def _bench():
    path = FIXTURES.parents[1] / "benchmarks" / "bench_soak.py"
    spec = importlib.util.spec_from_file_location("bench_soak", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_mixed_calls_from_four_threads_equal_sequential_runs(tiny_released_dir):
    bench = _bench()
    calls, _ = bench.build_calls(tiny_released_dir, 8)
    figures = bench.run(calls, threads=4, warmup_passes=1, passes=1)
    assert figures["kinds"] == {"t2i": 2, "edit": 2, "understand": 2, "decode": 2}
    assert figures["mismatched"] == []
    assert figures["workers_seen"] <= 4  # one pool for both passes, not new threads per pass
    warmup, measured = figures["passes"]
    assert measured["tensors"] <= warmup["tensors"] and measured["tensor_mb"] <= warmup["tensor_mb"], (warmup, measured)
    assert measured["objects"] - warmup["objects"] < figures["calls"], (warmup, measured)


def test_memory_check_reports_a_tensor_kept_per_call():
    bench = _bench()
    base = {"warmup": True, "tensors": 100, "tensor_mb": 1.0, "objects": 5000, "malloc_in_use_mb": 200.0,
            "rss_net_mb": 500.0}
    leaking = {**base, "warmup": False, "tensors": 108, "tensor_mb": 1.5, "objects": 5024}
    flat = {**base, "warmup": False, "objects": 5001, "malloc_in_use_mb": 200.5, "rss_net_mb": 501.0}
    assert bench.memory_failures({"calls": 8, "passes": [base, flat]}, max_growth_mb=4) == []
    failures = bench.memory_failures({"calls": 8, "passes": [base, leaking]}, max_growth_mb=4)
    assert len(failures) == 2 and "live tensors 100" in failures[0] and "24 more live Python objects" in failures[1]
