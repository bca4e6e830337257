# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""The LLaDA2.0-Uni web app: a Gradio page for conversations with pictures, text-to-image, editing and
inpainting on one loaded model.

`launch()` serves it (`llada-uni app` calls it; so does the Space's `app.py` through `create_app()`). The model side
(`AppEngine`, the request types, `RequestScheduler`) does not import Gradio; the page (`ui.create_demo`) does, and
needs the `app` extra: `pip install -e ".[app]"`.
"""

from .engine import (
    AppEngine,
    ChatReply,
    ChatRequest,
    ChatSession,
    EditRequest,
    ImageResult,
    InpaintRequest,
    TextToImageRequest,
)
from .launcher import create_app, launch
from .scheduler import Job, RequestScheduler, Update
from .settings import AppSettings


__all__ = [
    "AppEngine",
    "AppSettings",
    "ChatReply",
    "ChatRequest",
    "ChatSession",
    "EditRequest",
    "ImageResult",
    "InpaintRequest",
    "Job",
    "RequestScheduler",
    "TextToImageRequest",
    "Update",
    "create_app",
    "launch",
]
