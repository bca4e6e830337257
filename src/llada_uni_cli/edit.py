# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""`llada-uni edit`: edit an image following an instruction, one `LLaDAUniImageEditPipeline` call."""

from __future__ import annotations

import argparse

from .common import (
    FROM_CONFIG,
    add_common_options,
    add_decoder_options,
    add_generation_options,
    existing_file,
    image_output,
    json_output,
    load_picture,
    load_pipeline,
    non_negative_float,
    open_model,
    save_codes,
    save_image,
    seeded,
)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "edit", help="edit an image following an instruction",
        description="Image editing: the source picture is cropped to the nearest editing size and tokenized, the "
                    "language model writes the edited codes, the decoder renders them to an image.",
    )
    add_common_options(parser)
    parser.add_argument("--image", type=existing_file, required=True, help="picture to edit")
    parser.add_argument("--instruction", required=True, help="what to change")
    parser.add_argument("--output", default="llada-uni-edit.png",
                        help="image file to write; its extension picks the format (default: llada-uni-edit.png)")
    add_generation_options(parser, steps_field="edit_steps")
    parser.add_argument("--cfg-text-scale", type=non_negative_float, default=None,
                        help=f"guidance towards the instruction ({FROM_CONFIG})")
    parser.add_argument("--cfg-image-scale", type=non_negative_float, default=None,
                        help=f"guidance towards the source image ({FROM_CONFIG})")
    add_decoder_options(parser)
    parser.add_argument("--save-codes", metavar="JSON", default=None, help="also write the edited image's codes")
    return parser


def run(args: argparse.Namespace) -> int:
    from diffusers_llada_uni import LLaDAUniImageEditPipeline

    output = image_output(args.output)
    codes_file = json_output(args.save_codes) if args.save_codes else None
    picture = load_picture(args.image)
    path, _ = open_model(args)
    pipe = load_pipeline(LLaDAUniImageEditPipeline, path, args, decoders=(args.decoder,))
    result = pipe(
        image=picture, prompt=args.instruction, steps=args.steps, block_length=args.block_length,
        cfg_text_scale=args.cfg_text_scale, cfg_image_scale=args.cfg_image_scale, decoder=args.decoder,
        num_inference_steps=args.decoder_steps, generator=seeded(args.seed),
    )
    (h, w), image = result.grid_sizes[0], result.images[0]
    if codes_file is not None:
        save_codes(codes_file, result.image_tokens[0], h, w, instruction=args.instruction)
    save_image(image, output)
    print(f"Wrote {output} ({image.width} x {image.height} px, {h} x {w} codes)")
    return 0
