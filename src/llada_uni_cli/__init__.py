# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""The `llada-uni` command line: demo, text-to-image, understanding, editing, decoding, conversion (and training)."""

from pathlib import Path


DEMO_MODEL_DIR = Path(__file__).parent / "demo_model"

__all__ = ["DEMO_MODEL_DIR"]
