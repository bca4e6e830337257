# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""Conversion of the released LLaDA2.0-Uni folder into the layout every part loads from with `from_pretrained`.

`convert` (in `converter.py`) orchestrates the part converters: `backbone`, `processor`, `image_tokenizer`, `decoder`,
which share `weights` (plans, shape checks, streaming writes), `verification` and `safetensors_stream`. No part
imports the orchestrator, and nothing in the inference packages imports this one.
"""

from transformers_llada_uni.released_layout_llada_uni import CheckpointError

from .converter import DTYPES, ReleasedCheckpoint, convert, inspect_released, parse_dtype, verify_conversion
from .verification import VerificationError


__all__ = [
    "convert",
    "inspect_released",
    "verify_conversion",
    "parse_dtype",
    "DTYPES",
    "ReleasedCheckpoint",
    "CheckpointError",
    "VerificationError",
]
