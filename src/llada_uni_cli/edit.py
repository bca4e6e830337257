# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""`llada-uni edit`: edit an image following an instruction."""

from __future__ import annotations

import argparse
import sys

import torch

from .common import add_common_options, existing_file, non_negative_float
from .runtime import RANDOM_WEIGHTS_BANNER, ModelBundle, output_path, save_codes, save_image
from .t2i import add_decoder_options, add_generation_options


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "edit", help="edit an image following an instruction",
        description="Image editing: the source picture is cropped to the nearest editing size and tokenized, the "
                    "language model writes the edited codes, the decoder renders them to a PNG.",
    )
    add_common_options(parser)
    parser.add_argument("--image", type=existing_file, required=True, help="picture to edit")
    parser.add_argument("--instruction", required=True, help="what to change")
    parser.add_argument("--output", default="llada-uni-edit.png", help="PNG to write (default: llada-uni-edit.png)")
    add_generation_options(parser)
    parser.add_argument("--cfg-text-scale", type=non_negative_float, default=4.0,
                        help="guidance towards the instruction (default: 4.0)")
    parser.add_argument("--cfg-image-scale", type=non_negative_float, default=0.0,
                        help="guidance towards the source image (default: 0.0)")
    add_decoder_options(parser)
    parser.add_argument("--save-codes", metavar="JSON", default=None, help="also write the edited image's codes")
    return parser


def edit(bundle: ModelBundle, image, instruction: str, steps: int, block_length: int, cfg_text_scale: float,
         cfg_image_scale: float, seed: int):
    encoded = bundle.encode_image(image, mode="edit")
    generator = torch.Generator(device="cpu").manual_seed(seed)
    with torch.no_grad():
        return bundle.model.edit_image(
            encoded["image_tokens"], encoded["h"], encoded["w"], instruction, steps=steps,
            block_length=block_length, cfg_text_scale=cfg_text_scale, cfg_image_scale=cfg_image_scale,
            generator=generator, **bundle.generation_kwargs(),
        )


def run(args) -> int:
    output = output_path(args.output)
    bundle = ModelBundle(args.model, device=args.device, dtype=args.dtype, progress=args.progress)
    if bundle.random_weights:
        print(RANDOM_WEIGHTS_BANNER, file=sys.stderr)
    result = edit(bundle, args.image, args.instruction, args.steps, args.block_length, args.cfg_text_scale,
                  args.cfg_image_scale, args.seed)
    if args.save_codes:
        save_codes(output_path(args.save_codes, ".json"), result.token_ids, result.h, result.w,
                   instruction=args.instruction)
    image = bundle.decode(result.token_ids.view(result.h, result.w), turbo=args.decoder == "turbo", seed=args.seed,
                          steps=args.decoder_steps)
    save_image(image, output)
    print(f"Wrote {output} ({image.width} x {image.height} px, {result.h} x {result.w} codes)")
    return 0
