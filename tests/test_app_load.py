"""The web app under load (benchmarks/bench_app.py): 8 concurrent Gradio Python clients, 5 requests each, mixed tasks
(text-to-image, chat turns, edits, inpainting), against the app on 127.0.0.1; then a burst past the queue limit."""

import importlib.util
import sys
from pathlib import Path

import pytest


pytest.importorskip("gradio", reason="the web app needs the `app` extra (pip install -e '.[app]')")

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_app.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_app", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_eight_clients_lose_nothing_get_direct_answers_and_the_queue_limit_says_busy(single_thread):
    result = _bench().load_check(clients=8, per_client=5, burst=4, max_queue_size=8, max_batch_size=4)
    print(f"\n{result['requests_per_s']:.2f} requests/s, p50 {result['p50_s']:.2f} s, p95 {result['p95_s']:.2f} s; "
          f"batches {result['batch_sizes']}")
    assert result["sent"] == result["answered"] == 40 and not result["lost"], result["lost"]
    # Half of the clients ask two questions: two turns of one conversation (their Gradio session).
    assert result["by_kind"] == {"text_to_image": 16, "chat": 12, "edit": 8, "inpaint": 4}
    assert not result["mismatches"], result["mismatches"]
    # Several users' text-to-image prompts of one size ran as one call.
    assert max(result["batch_sizes"]["text_to_image"]) > 1
    assert sum(result["batch_sizes"]["chat"]) == 12 and sum(result["batch_sizes"]["edit"]) == 8
    assert sum(result["batch_sizes"]["inpaint"]) == 4
    # Past the running batch and the bounded queue, requests are refused with the busy message; the rest complete.
    assert result["burst_refused"] and set(result["burst_refused"]) == {"Queue is full! Please try again."}
    assert not result["burst_other_errors"]
    assert result["burst_accepted"] + len(result["burst_refused"]) == result["burst_submitted"] == 32
    assert sum(result["batch_sizes"]["text_to_image"]) == 16 + result["burst_accepted"]
