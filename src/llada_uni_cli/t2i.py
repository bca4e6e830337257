# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""`llada-uni t2i`: text-to-image (prompt -> image codes -> PNG)."""

from __future__ import annotations

import argparse
import sys

import torch

from .common import add_common_options, non_negative_float, positive_int
from .runtime import RANDOM_WEIGHTS_BANNER, ModelBundle, output_path, save_codes, save_image


def add_generation_options(parser, steps_default=8):
    parser.add_argument("--steps", type=positive_int, default=steps_default,
                        help=f"denoising steps per block (default: {steps_default})")
    parser.add_argument("--block-length", type=positive_int, default=32, help="tokens per block (default: 32)")


def add_decoder_options(parser):
    parser.add_argument("--decoder", choices=("turbo", "normal"), default="turbo",
                        help="turbo: the distilled 8-step decoder; normal: the 50-step one (default: turbo)")
    parser.add_argument("--decoder-steps", type=positive_int, default=None,
                        help="DiT evaluations of the decoder (default: the decoder's own, 8 or 49)")


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "t2i", help="generate an image from a text prompt",
        description="Text-to-image: the language model writes the image codes, the decoder renders them to a PNG.",
    )
    add_common_options(parser)
    parser.add_argument("--prompt", required=True, help="what to draw")
    parser.add_argument("--output", default="llada-uni-t2i.png", help="PNG to write (default: llada-uni-t2i.png)")
    parser.add_argument("--height", type=positive_int, default=1024, help="image height in pixels (default: 1024)")
    parser.add_argument("--width", type=positive_int, default=1024, help="image width in pixels (default: 1024)")
    add_generation_options(parser)
    parser.add_argument("--cfg-scale", type=non_negative_float, default=4.0,
                        help="classifier-free guidance scale; 1 turns guidance off (default: 4.0)")
    parser.add_argument("--thinking", action="store_true", help="let the model reason in text before drawing")
    parser.add_argument("--sprint", action="store_true", help="SPRINT acceleration (prefix cache, adaptive commits)")
    add_decoder_options(parser)
    parser.add_argument("--save-codes", metavar="JSON", default=None,
                        help="also write the image codes to this JSON file (input of `llada-uni decode`)")
    return parser


def text_to_image(bundle: ModelBundle, prompt: str, height: int, width: int, steps: int, block_length: int,
                  cfg_scale: float, thinking: bool, sprint: bool, seed: int):
    generator = torch.Generator(device="cpu").manual_seed(seed)
    with torch.no_grad():
        return bundle.model.generate_image(
            prompt, image_h=height, image_w=width, steps=steps, block_length=block_length, cfg_scale=cfg_scale,
            mode="thinking" if thinking else "normal", use_sprint=sprint, generator=generator,
            **bundle.generation_kwargs(),
        )


def run(args) -> int:
    output = output_path(args.output)
    bundle = ModelBundle(args.model, device=args.device, dtype=args.dtype, progress=args.progress)
    if bundle.random_weights:
        print(RANDOM_WEIGHTS_BANNER, file=sys.stderr)
    result = text_to_image(bundle, args.prompt, args.height, args.width, args.steps, args.block_length,
                           args.cfg_scale, args.thinking, args.sprint, args.seed)
    if result.thinking:
        print(f"Thinking: {result.thinking}")
    if args.save_codes:
        save_codes(output_path(args.save_codes, ".json"), result.token_ids, result.h, result.w, prompt=args.prompt)
    image = bundle.decode(result.token_ids.view(result.h, result.w), turbo=args.decoder == "turbo", seed=args.seed,
                          steps=args.decoder_steps)
    save_image(image, output)
    print(f"Wrote {output} ({image.width} x {image.height} px, {result.h} x {result.w} codes)")
    return 0
