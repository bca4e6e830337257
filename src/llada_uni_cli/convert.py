# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""`llada-uni convert` and `python conversion/convert_llada_uni.py`: the options, then a call of
`llada_uni_conversion.convert`."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from llada_uni_conversion import converter
from llada_uni_conversion import convert, parse_dtype  # noqa: F401  (the API behind the command)
from transformers_llada_uni.released_layout_llada_uni import IMAGE_TOKENIZER_DIR  # noqa: F401


def configure_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    from .common import add_device_option, add_dtype_option, add_seed_option

    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="SRC DST: the released folder and the folder to create (or --model SRC and DST)")
    parser.add_argument("--model", metavar="PATH", default=None, help="the released folder (same as SRC)")
    parser.add_argument("--overwrite", action="store_true", help="replace DST if it exists")
    parser.add_argument("--verify", dest="verify", action="store_true", default=True,
                        help="compare every written weight with its source, load every converted part and compare "
                             "it with the source on random inputs (default)")
    parser.add_argument("--no-verify", dest="verify", action="store_false", help="skip the verification")
    parser.add_argument("--no-remote-code", dest="remote_code", action="store_false",
                        help="do not copy the code files for trust_remote_code into DST")
    add_seed_option(parser, help_text="seed of the verification's random inputs")
    add_device_option(parser, help_text="device the verification runs on")
    add_dtype_option(parser, help_text="dtype of the written weights ('auto' keeps the source dtypes)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    return parser


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "convert",
        usage="llada-uni convert [options] SRC DST",
        help="convert a released LLaDA2.0-Uni folder into the from_pretrained layout",
        description=converter.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    configure_parser(parser)
    # A wrong number of paths is a usage error (status 2) like any other argparse error.
    parser.set_defaults(usage_error=parser.error)
    return parser


def _src_dst(args, parser_error) -> tuple[Path, Path]:
    paths = list(args.paths)
    if args.model is not None:
        paths.insert(0, args.model)
    if len(paths) != 2:
        parser_error(f"expected SRC and DST (SRC may be given as --model), got {len(paths)} path(s): {paths}")
    return Path(paths[0]), Path(paths[1])


def run(args: argparse.Namespace) -> int:
    def value_error(message):
        raise ValueError(message)

    src, dst = _src_dst(args, getattr(args, "usage_error", value_error))
    convert(
        src,
        dst,
        overwrite=args.overwrite,
        verify=args.verify,
        dtype=args.dtype,
        include_remote_code=args.remote_code,
        device=args.device,
        seed=args.seed,
        progress=args.progress,
        log=lambda message: print(message, file=sys.stderr),
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python conversion/convert_llada_uni.py SRC DST [options]`."""
    parser = configure_parser(argparse.ArgumentParser(
        prog="convert_llada_uni.py", usage="%(prog)s [options] SRC DST", description=converter.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    ))
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    _src_dst(args, parser.error)  # a usage error exits with status 2 before any work
    try:
        run(args)
    except KeyboardInterrupt:
        print("convert_llada_uni.py: interrupted; DST left untouched.", file=sys.stderr)
        return 130
    except Exception as err:  # every failure is one line; the library's own errors already name the file
        print(f"convert_llada_uni.py: error: {err}", file=sys.stderr)
        return 1
    return 0


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")
