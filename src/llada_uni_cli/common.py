# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""Options every subcommand shares, checked by argparse so a bad value is a usage error (exit status 2)."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch


DTYPE_CHOICES = ("auto", "float32", "bfloat16", "float16")


def _device(value: str) -> str:
    try:
        device = torch.device(value)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(
            f"invalid device {value!r}; use e.g. 'cpu', 'cuda', 'cuda:1' or 'mps'"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(f"device {value!r} requested but CUDA is not available here; use 'cpu'")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise argparse.ArgumentTypeError(f"device {value!r} requested but MPS is not available here; use 'cpu'")
    return str(device)


def _seed(value: str) -> int:
    try:
        seed = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid seed {value!r}; expected an integer >= 0") from None
    if seed < 0:
        raise argparse.ArgumentTypeError(f"invalid seed {seed}; expected an integer >= 0")
    return seed


def positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid value {value!r}; expected a positive integer") from None
    if number <= 0:
        raise argparse.ArgumentTypeError(f"invalid value {number}; expected a positive integer")
    return number


def non_negative_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid value {value!r}; expected a number >= 0") from None
    if not number >= 0:
        raise argparse.ArgumentTypeError(f"invalid value {number}; expected a number >= 0")
    return number


def existing_dir(value: str) -> Path:
    path = Path(value)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{value!r} is not a folder")
    return path


def existing_file(value: str) -> Path:
    path = Path(value)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{value!r} is not a file")
    return path


def add_model_option(parser, required=True, default=None, help_text=None):
    parser.add_argument(
        "--model",
        metavar="PATH",
        type=existing_dir,
        required=required,
        default=default,
        help=help_text or "a converted folder (`llada-uni convert`) or a released LLaDA2.0-Uni folder",
    )


def add_seed_option(parser, help_text="random seed (generation is greedy; the seed drives the decoder's noise)"):
    parser.add_argument("--seed", type=_seed, default=0, help=f"{help_text} (default: 0)")


def add_device_option(parser, help_text="device to run on"):
    default = "cuda" if torch.cuda.is_available() else "cpu"
    parser.add_argument("--device", type=_device, default=default, help=f"{help_text} (default: {default})")


def add_dtype_option(parser, help_text="dtype of the weights ('auto': the checkpoint's)"):
    parser.add_argument("--dtype", choices=DTYPE_CHOICES, default="auto", help=f"{help_text} (default: auto)")


def add_progress_option(parser):
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bars")


def add_common_options(parser, model_required=True, model_default=None, model_help=None):
    add_model_option(parser, required=model_required, default=model_default, help_text=model_help)
    add_seed_option(parser)
    add_device_option(parser)
    add_dtype_option(parser)
    add_progress_option(parser)
