# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""The app's settings (no Gradio import: the command line builds them before the page exists)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class AppSettings:
    r"""
    How the app queues and batches, and the initial value of every control (what a visitor sees first).

    The control defaults are the original implementation's; smaller values (used by the tests) make a random-weight
    demo quicker. `edit_size=None` and `decoder_steps=None` mean the image processor's and the decoder's own.
    `conversation_ttl_s`: a visitor's conversation (and the model's keys / values kept for it) is freed after this
    many seconds without a new turn.
    """

    max_queue_size: int = 16
    max_batch_size: int = 4
    batch_window_s: float = 0.05
    image_size: int = 1024
    decoder: str = "turbo"
    decoder_steps: int | None = None
    steps: int = 8
    cfg_scale: float = 4.0
    seed: int = 0
    answer_length: int = 512
    answer_steps: int = 32
    edit_size: int | None = None
    crop_mode: str = "edit"
    cfg_text_scale: float = 4.0
    cfg_image_scale: float = 0.0
    conversation_ttl_s: float = 3600.0

    def __post_init__(self):
        if self.max_queue_size < 1 or self.max_batch_size < 1:
            raise ValueError(
                f"`max_queue_size` and `max_batch_size` must be at least 1, got {self.max_queue_size} and "
                f"{self.max_batch_size}."
            )


__all__ = ["AppSettings"]
