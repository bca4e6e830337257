# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""`llada-uni decode`: render image codes (a JSON file from `t2i --save-codes`) to an image, one
`LLaDAUniDecoderPipeline` call."""

from __future__ import annotations

import argparse

from .common import (
    add_common_options,
    add_decoder_options,
    existing_file,
    image_output,
    load_codes,
    load_decoder,
    naming,
    open_model,
    save_image,
    seeded,
)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "decode", help="render image codes to an image with the image decoder",
        description="Decode image codes with the flow-matching decoder. The codes file is JSON: "
                    '{"token_ids": [codes without image_token_offset, raster order], "h": rows, "w": columns}.',
    )
    add_common_options(parser)
    parser.add_argument("--codes", type=existing_file, required=True, help="JSON file with token_ids, h and w")
    parser.add_argument("--output", default="llada-uni-decode.png",
                        help="image file to write; its extension picks the format (default: llada-uni-decode.png)")
    add_decoder_options(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    output = image_output(args.output)
    token_ids, h, w = load_codes(args.codes)
    path, _ = open_model(args)
    pipe = load_decoder(path, args)
    with naming(args.codes):
        codes = pipe.prepare_image_tokens(token_ids, (h, w))
    image = pipe(codes, num_inference_steps=args.decoder_steps, generator=seeded(args.seed)).images[0]
    save_image(image, output)
    print(f"Wrote {output} ({image.width} x {image.height} px, {h} x {w} codes)")
    return 0
