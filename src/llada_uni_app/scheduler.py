# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""One worker thread owns the model; requests from every page and API client meet here and are batched.

Gradio's queue decides which events run (and refuses events past its size with its "busy" message); the events that
run submit their request here and wait for it. The worker takes the oldest request and, when its kind can be batched
(`request.batch_key()` is not None), every other waiting request with the same key, up to `max_batch_size`, and runs
them as one pipeline call: several users' text-to-image prompts of one size share the language model's forwards and
the decoder's. Each request still gets its own progress and result.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from .engine import AppEngine, ChatRequest, EditRequest, InpaintRequest, TextToImageRequest


logger = logging.getLogger(__name__)


@dataclass
class Update:
    r"""What a waiting request hears: `kind` is `"queued"`, `"progress"` (`fraction`, `text` describes it), `"text"`
    (the answer so far) or `"done"`."""

    kind: str
    fraction: float = 0.0
    text: str = ""


class Job:
    r"""A submitted request: iterate `updates()` for its progress; `result()` waits for the outcome (or raises)."""

    def __init__(self, request: TextToImageRequest | EditRequest | InpaintRequest | ChatRequest):
        self.request = request
        self.key = request.batch_key()
        self.submitted = time.monotonic()
        self._updates: queue.Queue[Update] = queue.Queue()
        self._done = threading.Event()
        self._result: Any = None
        self._error: BaseException | None = None
        self.cancelled = False

    # worker side
    def _report(self, update: Update):
        self._updates.put(update)

    def _finish(self, result=None, error: BaseException | None = None):
        self._result, self._error = result, error
        self._done.set()
        self._updates.put(Update("done"))

    # caller side
    def updates(self) -> Iterator[Update]:
        """Progress and text updates until the job is done (the final `"done"` update is not yielded)."""
        while True:
            update = self._updates.get()
            if update.kind == "done":
                return
            yield update

    def result(self, timeout: float | None = None) -> Any:
        if not self._done.wait(timeout):
            raise TimeoutError("The request did not finish in time.")
        if self._error is not None:
            raise self._error
        return self._result

    def cancel(self) -> None:
        """Skips the job if the worker has not started it (the page was closed)."""
        self.cancelled = True


class RequestScheduler:
    r"""
    Runs every request on one [`AppEngine`] from one worker thread, batching compatible requests.

    Args:
        engine: the loaded parts.
        max_batch_size: the most requests in one call (the app lets as many events run at once).
        batch_window_s: how long the worker waits for companions when it finds a batchable request alone.
    """

    def __init__(self, engine: AppEngine, max_batch_size: int = 4, batch_window_s: float = 0.05):
        if max_batch_size < 1:
            raise ValueError(f"`max_batch_size` must be at least 1, got {max_batch_size}.")
        self.engine = engine
        self.max_batch_size = int(max_batch_size)
        self.batch_window_s = float(batch_window_s)
        self._pending: deque[Job] = deque()
        self._condition = threading.Condition()
        self._closed = False
        # Each request type: its name, and the name of the engine method that runs a (validated) batch of it as one
        # call, `method(requests, progress)` -> one result per request. Chat answers one request,
        # streams its text and reports the progress of the pictures it draws.
        self._runners: dict[type, tuple[str, str | None]] = {
            TextToImageRequest: ("text_to_image", "_text_to_image"),
            EditRequest: ("edit", "_edit"),
            InpaintRequest: ("inpaint", "_inpaint"),
            ChatRequest: ("chat", None),
        }
        # Sizes of the calls the worker made, by kind (what the tests and the load check read).
        self.batch_sizes: dict[str, list[int]] = {name: [] for name, _ in self._runners.values()}
        self._thread = threading.Thread(target=self._work, name="llada-uni-app-worker", daemon=True)
        self._thread.start()

    def submit(self, request: TextToImageRequest | EditRequest | InpaintRequest | ChatRequest) -> Job:
        """Validates `request` (ValueError / TypeError for the page) and queues it."""
        if type(request) not in self._runners:
            raise TypeError(f"Unknown request type {type(request).__name__}.")
        self.engine.validate(request)
        job = Job(request)
        with self._condition:
            if self._closed:
                raise RuntimeError("The app is shutting down.")
            ahead = len(self._pending)
            self._pending.append(job)
            self._condition.notify_all()
        job._report(Update("queued", 0.0, f"Waiting for the model ({ahead} ahead)" if ahead else "Starting"))
        return job

    def close(self, timeout: float = 30.0) -> None:
        """Stops taking requests, fails the waiting ones and waits for the running call."""
        with self._condition:
            self._closed = True
            waiting = list(self._pending)
            self._pending.clear()
            self._condition.notify_all()
        for job in waiting:
            job._finish(error=RuntimeError("The app is shutting down."))
        self._thread.join(timeout)

    # ------------------------------------------------------------------------------------------ worker

    def _take_batch(self) -> list[Job] | None:
        with self._condition:
            while not self._pending and not self._closed:
                self._condition.wait()
            if self._closed:
                return None
            first = self._pending[0]
            if first.key is not None and self.max_batch_size > 1:
                deadline = time.monotonic() + self.batch_window_s
                while self._count(first.key) < self.max_batch_size and not self._closed:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._condition.wait(remaining)
            batch = [first]
            if first.key is not None:
                batch += [job for job in list(self._pending)[1:] if job.key == first.key][: self.max_batch_size - 1]
            for job in batch:
                self._pending.remove(job)
            return batch

    def _count(self, key) -> int:
        return sum(1 for job in self._pending if job.key == key)

    def _work(self):
        while True:
            batch = self._take_batch()
            if batch is None:
                return
            for job in batch:
                if job.cancelled:
                    job._finish(error=RuntimeError("The request was cancelled."))
            batch = [job for job in batch if not job.cancelled]
            if not batch:
                continue
            kind, method = self._runners[type(batch[0].request)]
            self.batch_sizes[kind].append(len(batch))
            try:
                if method is None:
                    self._run_chat(batch)
                else:
                    self._run_batch(getattr(self.engine, method), batch)
            except Exception as err:  # noqa: BLE001 - every waiting user must hear about it
                logger.exception("A %s call failed", kind)
                for job in batch:
                    if not job._done.is_set():
                        job._finish(error=err)

    def _run_batch(self, method: Callable, batch: list[Job]):
        def progress(index: int, fraction: float, text: str):
            batch[index]._report(Update("progress", fraction, text))

        results = method([job.request for job in batch], progress)
        for job, result in zip(batch, results):
            job._finish(result)

    def _run_chat(self, batch: list[Job]):
        (job,) = batch
        reply = self.engine._chat(job.request, lambda text: job._report(Update("text", text=text)),
                                  lambda index, fraction, text: job._report(Update("progress", fraction, text)))
        job._finish(reply)


__all__ = ["Job", "RequestScheduler", "Update"]
