# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""Load check of the web app: concurrent Gradio Python clients against one server on the loopback interface.

1. `--clients` clients (default 8), each in its own thread, send `--requests` requests one after another (default 5),
   mixed tasks: text-to-image (all of one size, so the worker can batch them), questions about pictures (the chat
   endpoint, streamed; a client's questions are turns of one conversation, its Gradio session), an edit, an
   inpainting with a painted mask. Every request must come back (none lost), and every answer must equal the same
   call made directly on the engine afterwards (each client's conversation replayed turn by turn): the answer text
   exactly; for pictures the language model's codes exactly (their digest) and the PNG pixels within one 8-bit level
   (a batched decoder call rounds the last bit of a few pixels differently from a single one).
2. Past the queue limit the server must refuse with its busy message: every client submits `--burst` text-to-image
   requests at once; those beyond the running batch and the bounded queue are refused ("Queue is full"; the page says
   "This application is currently busy"), and every accepted one still completes correctly.

Prints requests/s and p50 / p95 latency of part 1 and the batch sizes the worker ran. Only loopback traffic; every
loop is bounded in count and time. The tiny bundled model is the default (its answers are noise; the figures measure
the app's queueing, batching and transport around a very small model).

    python benchmarks/bench_app.py
    python benchmarks/bench_app.py --clients 8 --requests 5 --burst 4 --json figures.json
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image


os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
PICTURES = REPO / "tests" / "fixtures" / "images"

# Small settings so a random-weight model answers in about a second on a CPU.
IMAGE_SIZE, DECODER_STEPS, LM_STEPS, EDIT_SIZE, ANSWER_LENGTH = 256, 2, 8, 128, 64


@dataclass
class PoolItem:
    """One distinct request: how a client sends it and how to make the same call directly on the engine (for a chat
    turn: `direct(engine, session)` -> `(reply, session after it)`, the session being the client's conversation)."""

    kind: str
    api_name: str
    client_args: Callable[[], tuple]
    direct: Callable[..., Any]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(model: str | None = None, max_queue_size: int = 8, max_batch_size: int = 4):
    """The app on a free loopback port with small control defaults: `(demo, url)`."""
    from llada_uni_app import AppSettings, launch

    settings = AppSettings(
        max_queue_size=max_queue_size, max_batch_size=max_batch_size, image_size=IMAGE_SIZE,
        decoder_steps=DECODER_STEPS, steps=LM_STEPS, answer_length=ANSWER_LENGTH, answer_steps=LM_STEPS,
        edit_size=EDIT_SIZE,
    )
    port = free_port()
    demo = launch(model, host="127.0.0.1", port=port, settings=settings, block=False, quiet=True)
    return demo, f"http://127.0.0.1:{port}/"


def request_pool() -> list[PoolItem]:
    """Ten distinct requests: four prompts, three questions, two edits, one inpainting."""
    from gradio_client import handle_file

    from llada_uni_app import EditRequest, InpaintRequest, TextToImageRequest

    questions_on = sorted(PICTURES.glob("*.png"))
    # Editing writes the source's grid, so its pictures must crop to grids with size tokens at the small budget.
    folder = Path(tempfile.mkdtemp(prefix="llada-uni-load-pictures-"))
    to_edit = [PICTURES / "square_64x64_rgba.png"]
    for side in (128, 256):
        ramp = np.linspace(0, 255, side, dtype=np.uint8)
        picture = np.stack([np.tile(ramp, (side, 1)), np.tile(ramp[:, None], (1, side)),
                            np.full((side, side), 96, np.uint8)], axis=-1)
        to_edit.append(folder / f"ramp_{side}.png")
        Image.fromarray(picture).save(to_edit[-1])
    items = []
    for index, prompt in enumerate(["A red fox in the snow", "A lighthouse at dusk", "Two cats on a sofa",
                                    "A bowl of ramen, studio light"]):
        request = TextToImageRequest(prompt, IMAGE_SIZE, IMAGE_SIZE, decoder="turbo", decoder_steps=DECODER_STEPS,
                                     steps=LM_STEPS, seed=index)
        items.append(PoolItem(
            "text_to_image", "/text_to_image",
            lambda r=request: (r.prompt, r.width, r.height, r.decoder, r.decoder_steps, r.thinking, r.seed, r.steps,
                               r.cfg_scale),
            lambda engine, r=request: engine.text_to_image([r])[0],
        ))
    for index, (picture, question) in enumerate(zip(questions_on, ["What is in this picture?", "Describe the colours.",
                                                               "How many shapes are there?"])):
        items.append(PoolItem(
            "chat", "/chat",
            lambda p=picture, q=question: ({"text": q, "files": [handle_file(str(p))]}, ANSWER_LENGTH, LM_STEPS,
                                           "turbo", DECODER_STEPS, 0),
            lambda engine, session, p=picture, q=question: _chat_turn(engine, session, q, str(p)),
        ))
    for index, (picture, instruction) in enumerate(zip(to_edit[1:], ["Make it blue.", "Add a hat."])):
        items.append(PoolItem(
            "edit", "/edit",
            lambda p=picture, i=instruction, s=index: (handle_file(str(p)), i, "edit", EDIT_SIZE, "turbo",
                                                        DECODER_STEPS, s, LM_STEPS, 4.0, 0.0),
            lambda engine, p=picture, i=instruction, s=index: engine.edit([EditRequest(
                engine.load_picture(p), i, edit_size=EDIT_SIZE, decoder_steps=DECODER_STEPS, steps=LM_STEPS, seed=s,
            )])[0],
        ))
    # Inpainting: a layer painted over the middle of the 128 px picture, as the page's brush leaves it.
    picture, box = to_edit[1], (32, 32, 96, 80)
    layer = Image.new("RGBA", (128, 128), (0, 0, 0, 0))
    layer.paste((255, 0, 255, 140), box)
    layer.save(folder / "layer.png")
    mask = Image.new("L", (128, 128), 0)
    mask.paste(255, box)
    items.append(PoolItem(
        "inpaint", "/inpaint",
        lambda p=picture: ({"background": handle_file(str(p)), "layers": [handle_file(str(folder / "layer.png"))],
                            "composite": None}, "A yellow sun.", "edit", 0, "edit", EDIT_SIZE, "turbo", DECODER_STEPS,
                           5, LM_STEPS, 4.0, 0.0),
        lambda engine, p=picture: engine.inpaint([InpaintRequest(
            engine.load_picture(p), mask, "A yellow sun.", edit_size=EDIT_SIZE, decoder_steps=DECODER_STEPS,
            steps=LM_STEPS, seed=5,
        )])[0],
    ))
    return items


def _chat_turn(engine, session, question: str, picture: str):
    """One chat turn made directly, as the page makes it for a client: `(reply, session after it)`."""
    session = session.with_user_turn(question, [picture])
    reply = engine.chat(session.request(gen_length=ANSWER_LENGTH, steps=LM_STEPS, decoder="turbo",
                                        decoder_steps=DECODER_STEPS, seed=0))
    return reply, session.with_reply(reply, [f"picture-{i}.png" for i in range(len(reply.images))])


def _answer(kind: str, output) -> Any:
    """The comparable part of an endpoint's output: the answer text, or (codes digest, picture path)."""
    if kind == "chat":
        chat, _ = output
        return "".join(part.get("text", "") for part in chat[-1]["content"] if part.get("type") == "text")
    picture, *rest = output
    details = rest[-1]
    return details["codes_sha256"], picture


def _same(kind: str, served, direct) -> tuple[bool, str]:
    if kind == "chat":
        # Gradio's chatbot shows a text as `inspect.cleandoc` leaves it (outer blank space dropped).
        shown = inspect.cleandoc(direct.text)
        return served == shown, f"text {served!r} != {shown!r}"
    digest, path = served
    if digest != direct.codes_digest:
        return False, f"codes {digest} != {direct.codes_digest}"
    got = np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)
    want = np.asarray(direct.image.convert("RGB"), dtype=np.int16)
    if got.shape != want.shape:
        return False, f"picture shape {got.shape} != {want.shape}"
    worst = int(np.abs(got - want).max())
    return worst <= 1, f"pixels differ by up to {worst} levels"


def _client(url: str, folder: str):
    from gradio_client import Client

    return Client(url, verbose=False, download_files=folder, analytics_enabled=False)


def run_load(url: str, pool: list[PoolItem], clients: int = 8, per_client: int = 5, timeout_s: float = 600) -> dict:
    """Part 1: `clients` threads, `per_client` sequential requests each; returns every outcome and latency."""
    outcomes: list[dict] = []
    lock = threading.Lock()
    folder = tempfile.mkdtemp(prefix="llada-uni-load-")
    deadline = time.monotonic() + timeout_s

    def work(client_index: int):
        client = _client(url, folder)
        try:
            for j in range(per_client):
                if time.monotonic() > deadline:
                    break
                index = (client_index * per_client + j) % len(pool)
                item = pool[index]
                start = time.perf_counter()
                try:
                    output = client.predict(*item.client_args(), api_name=item.api_name)
                    record = {"pool": index, "kind": item.kind, "answer": _answer(item.kind, output)}
                except Exception as err:  # noqa: BLE001 - a lost request is a finding, not a crash
                    record = {"pool": index, "kind": item.kind, "error": f"{type(err).__name__}: {err}"}
                record.update(client=client_index, order=j)
                record["latency_s"] = time.perf_counter() - start
                with lock:
                    outcomes.append(record)
        finally:
            client.close()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()) + 5)
    wall = time.perf_counter() - start
    latencies = sorted(o["latency_s"] for o in outcomes if "error" not in o)
    return {
        "sent": clients * per_client,
        "outcomes": outcomes,
        "wall_s": wall,
        "requests_per_s": len(latencies) / wall if wall else 0.0,
        "p50_s": statistics.median(latencies) if latencies else None,
        "p95_s": latencies[min(len(latencies) - 1, int(round(0.95 * (len(latencies) - 1))))] if latencies else None,
    }


def run_burst(url: str, pool: list[PoolItem], clients: int = 8, burst: int = 4, timeout_s: float = 600) -> dict:
    """Part 2: every client submits `burst` text-to-image requests at once; counts accepted and refused ones."""
    from gradio_client.exceptions import AppError
    from gradio_client.utils import QueueError

    images = [index for index, item in enumerate(pool) if item.kind == "text_to_image"]
    folder = tempfile.mkdtemp(prefix="llada-uni-burst-")
    connections = [_client(url, folder) for _ in range(clients)]
    try:
        submitted = []
        for c, client in enumerate(connections):
            for b in range(burst):
                index = images[(c * burst + b) % len(images)]
                submitted.append((index, client.submit(*pool[index].client_args(), api_name="/text_to_image")))
        accepted, refused, other = [], [], []
        for index, job in submitted:
            try:
                accepted.append({"pool": index, "kind": "text_to_image",
                                 "answer": _answer("text_to_image", job.result(timeout=timeout_s))})
            except QueueError as err:
                refused.append(str(err))
            except AppError as err:
                other.append(f"AppError: {err}")
    finally:
        for client in connections:
            client.close()
    return {"submitted": len(submitted), "accepted": accepted, "refused": refused, "other_errors": other}


def compare_with_direct(engine, pool: list[PoolItem], outcomes: list[dict]) -> list[str]:
    """Runs each distinct request once directly on the engine (each client's chat turns as one conversation, in its
    order) and lists every served answer that differs."""
    from llada_uni_app import ChatSession

    direct: dict[int, Any] = {}
    problems = []
    sessions: dict[int, Any] = {}
    for outcome in sorted(outcomes, key=lambda o: (o.get("client", -1), o.get("order", 0))):
        if "error" in outcome:
            continue
        index = outcome["pool"]
        if outcome["kind"] == "chat":
            session = sessions.get(outcome["client"], ChatSession())
            reply, sessions[outcome["client"]] = pool[index].direct(engine, session)
            same, why = _same("chat", outcome["answer"], reply)
            if not same:
                problems.append(f"client {outcome['client']} turn {outcome['order']} (chat): {why}")
            continue
        if index not in direct:
            direct[index] = pool[index].direct(engine)
        same, why = _same(outcome["kind"], outcome["answer"], direct[index])
        if not same:
            problems.append(f"pool item {index} ({outcome['kind']}): {why}")
    return problems


def load_check(model: str | None = None, clients: int = 8, per_client: int = 5, burst: int = 4,
               max_queue_size: int = 8, max_batch_size: int = 4) -> dict:
    """Both parts on a fresh server; returns the figures and the findings (the test asserts on them)."""
    demo, url = start_server(model, max_queue_size=max_queue_size, max_batch_size=max_batch_size)
    try:
        pool = request_pool()
        load = run_load(url, pool, clients, per_client)
        burst_result = run_burst(url, pool, clients, burst)
        engine = demo.scheduler.engine
        batches = {kind: list(sizes) for kind, sizes in demo.scheduler.batch_sizes.items()}
        mismatches = compare_with_direct(engine, pool, load["outcomes"] + burst_result["accepted"])
    finally:
        demo.close()
        demo.scheduler.close()
    lost = [o for o in load["outcomes"] if "error" in o]
    return {
        "url": url,
        "sent": load["sent"],
        "answered": len(load["outcomes"]) - len(lost),
        "lost": lost,
        "mismatches": mismatches,
        "requests_per_s": load["requests_per_s"],
        "p50_s": load["p50_s"],
        "p95_s": load["p95_s"],
        "wall_s": load["wall_s"],
        "by_kind": {kind: sum(1 for o in load["outcomes"] if o["kind"] == kind)
                    for kind in ("text_to_image", "chat", "edit", "inpaint")},
        "burst_submitted": burst_result["submitted"],
        "burst_accepted": len(burst_result["accepted"]),
        "burst_refused": burst_result["refused"],
        "burst_other_errors": burst_result["other_errors"],
        "batch_sizes": batches,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="model folder (default: the bundled tiny random-weight model)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=5, help="requests per client in part 1")
    parser.add_argument("--burst", type=int, default=4, help="simultaneous requests per client in part 2")
    parser.add_argument("--max-queue-size", type=int, default=8)
    parser.add_argument("--max-batch-size", type=int, default=4)
    parser.add_argument("--torch-threads", type=int, default=None,
                        help="torch intra-op threads (default: 1 for the tiny model, whose matmuls only lose from "
                             "threads on a busy machine; torch's own default for --model)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    threads = args.torch_threads if args.torch_threads is not None else (1 if args.model is None else None)
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    result = load_check(args.model, args.clients, args.requests, args.burst, args.max_queue_size,
                        args.max_batch_size)
    print(f"part 1: {args.clients} clients x {args.requests} requests = {result['sent']} sent, "
          f"{result['answered']} answered, {len(result['lost'])} lost, {len(result['mismatches'])} differ from direct "
          f"calls; mix {result['by_kind']}")
    print(f"        {result['requests_per_s']:.2f} requests/s over {result['wall_s']:.1f} s; latency p50 "
          f"{result['p50_s']:.2f} s, p95 {result['p95_s']:.2f} s")
    print(f"part 2: {result['burst_submitted']} submitted at once, {result['burst_accepted']} accepted, "
          f"{len(result['burst_refused'])} refused as busy ({sorted(set(result['burst_refused']))}), "
          f"{len(result['burst_other_errors'])} other errors")
    print(f"batch sizes the worker ran: {result['batch_sizes']}")
    for problem in result["lost"] + result["mismatches"] + result["burst_other_errors"]:
        print(f"  PROBLEM: {problem}")
    if args.json is not None:
        args.json.write_text(json.dumps({k: v for k, v in result.items()}, indent=2, default=str))
    ok = not result["lost"] and not result["mismatches"] and result["burst_refused"] and not result[
        "burst_other_errors"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
