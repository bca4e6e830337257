# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""`llada-uni decode`: render image codes (a JSON file from `t2i --save-codes`) to a PNG."""

from __future__ import annotations

import argparse
import sys

from .common import add_common_options, existing_file
from .runtime import RANDOM_WEIGHTS_BANNER, ModelBundle, load_codes, output_path, save_image
from .t2i import add_decoder_options


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "decode", help="render image codes to a PNG with the image decoder",
        description="Decode image codes with the flow-matching decoder. The codes file is JSON: "
                    '{"token_ids": [codes without image_token_offset, raster order], "h": rows, "w": columns}.',
    )
    add_common_options(parser)
    parser.add_argument("--codes", type=existing_file, required=True, help="JSON file with token_ids, h and w")
    parser.add_argument("--output", default="llada-uni-decode.png", help="PNG to write (default: llada-uni-decode.png)")
    add_decoder_options(parser)
    return parser


def run(args) -> int:
    output = output_path(args.output)
    codes, h, w = load_codes(args.codes)
    bundle = ModelBundle(args.model, device=args.device, dtype=args.dtype, progress=args.progress)
    if bundle.random_weights:
        print(RANDOM_WEIGHTS_BANNER, file=sys.stderr)
    image = bundle.decode(codes, turbo=args.decoder == "turbo", seed=args.seed, steps=args.decoder_steps)
    save_image(image, output)
    print(f"Wrote {output} ({image.width} x {image.height} px, {h} x {w} codes)")
    return 0
