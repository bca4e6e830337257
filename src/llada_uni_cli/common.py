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


def number_in_range(kind, low=None, high=None, *, low_inclusive=True, high_inclusive=True, expected=None):
    """An argparse `type=` that parses an int or float and checks it lies in the given range (bounds optional)."""
    if expected is None:
        parts = []
        if low is not None:
            parts.append(f"{'>=' if low_inclusive else '>'} {low}")
        if high is not None:
            parts.append(f"{'<=' if high_inclusive else '<'} {high}")
        expected = f"{'an integer' if kind is int else 'a number'} {' and '.join(parts)}".strip()

    def parse(value: str):
        try:
            number = kind(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid value {value!r}; expected {expected}") from None
        too_low = low is not None and (number < low if low_inclusive else number <= low)
        too_high = high is not None and (number > high if high_inclusive else number >= high)
        if too_low or too_high or number != number:  # NaN is in no range
            raise argparse.ArgumentTypeError(f"invalid value {number}; expected {expected}")
        return number

    return parse


_seed = number_in_range(int, 0)
positive_int = number_in_range(int, 0, low_inclusive=False, expected="a positive integer")
non_negative_int = number_in_range(int, 0)
positive_float = number_in_range(float, 0, low_inclusive=False)
non_negative_float = number_in_range(float, 0)
probability = number_in_range(float, 0.0, 1.0, high_inclusive=False, expected="a number in [0, 1)")


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
