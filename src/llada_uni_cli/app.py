# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""`llada-uni app`: the web app (chat about pictures, text-to-image, editing) in a browser.

By default it serves the tiny random-weight model shipped in the package (the page says so); pass `--model` for a
converted or released LLaDA2.0-Uni folder. Needs the `app` extra: pip install -e ".[app]". Stop it with Ctrl-C.
"""

from __future__ import annotations

import argparse

from . import DEMO_MODEL_DIR
from .common import add_device_option, dtype_from_name, add_dtype_option, add_model_option, add_seed_option, number_in_range


_port = number_in_range(int, 1, 65535, expected="a TCP port (1..65535)")
_at_least_one = number_in_range(int, 1, expected="an integer >= 1")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "app", help="serve the web app (chat about pictures, text-to-image, editing)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_option(parser, required=False, default=None,
                     help_text="model folder (default: the tiny random-weight demo model shipped in the package)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: 127.0.0.1, this machine only; 0.0.0.0 serves the network)")
    parser.add_argument("--port", type=_port, default=7860, help="TCP port (default: 7860)")
    parser.add_argument("--max-queue", type=_at_least_one, default=16,
                        help="requests that may wait; past it visitors are told the app is busy (default: 16)")
    parser.add_argument("--max-batch", type=_at_least_one, default=4,
                        help="most requests of one kind and size run as one batch (default: 4)")
    add_seed_option(parser, help_text="the seed the page starts with")
    add_device_option(parser)
    add_dtype_option(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    try:
        import gradio  # noqa: F401
    except ImportError as err:
        raise RuntimeError(
            f"the web app needs the `app` extra ({err.name} is not installed): pip install -e \".[app]\""
        ) from None
    from llada_uni_app import AppSettings, launch

    settings = AppSettings(max_queue_size=args.max_queue, max_batch_size=args.max_batch, seed=args.seed)
    if args.model is None:
        print(f"Model: the bundled tiny demo model ({DEMO_MODEL_DIR}): RANDOM weights, its outputs are noise.")
    launch(args.model, host=args.host, port=args.port, device=args.device, dtype=dtype_from_name(args.dtype),
           settings=settings)
    return 0
