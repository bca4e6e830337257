# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""`llada-uni t2i`: text-to-image (prompt -> image codes -> image file), one `LLaDAUniTextToImagePipeline` call."""

from __future__ import annotations

import argparse

from .common import (
    FROM_CONFIG,
    add_common_options,
    add_decoder_options,
    add_generation_options,
    image_output,
    json_output,
    load_pipeline,
    non_negative_float,
    open_model,
    positive_int,
    save_codes,
    save_image,
    seeded,
)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "t2i", help="generate an image from a text prompt",
        description="Text-to-image: the language model writes the image codes, the decoder renders them to an image.",
    )
    add_common_options(parser)
    parser.add_argument("--prompt", required=True, help="what to draw")
    parser.add_argument("--output", default="llada-uni-t2i.png",
                        help="image file to write; its extension picks the format (default: llada-uni-t2i.png)")
    parser.add_argument("--height", type=positive_int, default=None,
                        help=f"image height in pixels ({FROM_CONFIG}, `image_h`)")
    parser.add_argument("--width", type=positive_int, default=None,
                        help=f"image width in pixels ({FROM_CONFIG}, `image_w`)")
    add_generation_options(parser, steps_field="image_steps")
    parser.add_argument("--cfg-scale", type=non_negative_float, default=None,
                        help=f"classifier-free guidance scale; 1 turns guidance off ({FROM_CONFIG})")
    parser.add_argument("--thinking", action="store_true", help="let the model reason in text before drawing")
    parser.add_argument("--sprint", action=argparse.BooleanOptionalAction, default=None,
                        help=f"SPRINT acceleration (prefix cache, adaptive commits) on or off ({FROM_CONFIG})")
    add_decoder_options(parser)
    parser.add_argument("--save-codes", metavar="JSON", default=None,
                        help="also write the image codes to this JSON file (input of `llada-uni decode`)")
    return parser


def run(args: argparse.Namespace) -> int:
    from diffusers_llada_uni import LLaDAUniTextToImagePipeline

    output = image_output(args.output)
    codes_file = json_output(args.save_codes) if args.save_codes else None
    path, _ = open_model(args)
    # Text-to-image reads no picture: the image tokenizer stays on disk, and only the chosen decoder loads.
    pipe = load_pipeline(LLaDAUniTextToImagePipeline, path, args, decoders=(args.decoder,), image_tokenizer=False)
    result = pipe(
        args.prompt, height=args.height, width=args.width, thinking=args.thinking, steps=args.steps,
        block_length=args.block_length, cfg_scale=args.cfg_scale, use_sprint=args.sprint, decoder=args.decoder,
        num_inference_steps=args.decoder_steps, generator=seeded(args.seed),
    )
    (h, w), image = result.grid_sizes[0], result.images[0]
    if result.thinking[0]:
        print(f"Thinking: {result.thinking[0]}")
    if codes_file is not None:
        save_codes(codes_file, result.image_tokens[0], h, w, prompt=args.prompt)
    save_image(image, output)
    print(f"Wrote {output} ({image.width} x {image.height} px, {h} x {w} codes)")
    return 0
