# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""`llada-uni outpaint`: extend a picture onto a larger canvas (the command lives with `inpaint`)."""

from .inpaint import add_outpaint_parser as add_parser
from .inpaint import run


__all__ = ["add_parser", "run"]
