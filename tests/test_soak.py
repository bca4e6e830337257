# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""Mixed calls from several threads on one loaded set of parts equal the same calls made one after another.

A short run of `benchmarks/bench_soak.py` (the benchmark's 200-call run also checks that memory stays flat after
warm-up; eight calls are too few to tell warm-up from growth, so only the outputs are checked here).
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
    figures = bench.run(calls, threads=4, warmup=4)
    assert figures["kinds"] == {"t2i": 2, "edit": 2, "understand": 2, "decode": 2}
    assert figures["mismatched"] == []
