# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""`llada-uni inpaint` and `llada-uni outpaint`: regenerate a masked region of a picture, or extend its canvas.

One module registers both subcommands (`add_parser` adds two); each runs [`LLaDAUniInpaintPipeline`] on the folder's
parts.
"""

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
    non_negative_int,
    number_in_range,
    open_model,
    positive_int,
    save_codes,
    save_image,
    seeded,
)


_fraction = number_in_range(float, 0.0, 1.0, low_inclusive=False, expected="a number in (0, 1]")


def _add_shared_options(parser):
    parser.add_argument("--image", type=existing_file, required=True, help="the source picture")
    parser.add_argument("--prompt", required=True,
                        help="the instruction (--conditioning edit) or caption (--conditioning text_to_image)")
    parser.add_argument("--conditioning", choices=("edit", "text_to_image"), default="edit",
                        help="edit: the source picture is the prompt's reference, editing guidance; text_to_image: "
                             "the caption alone (default: edit)")
    add_generation_options(parser, steps_field="edit_steps / image_steps")
    parser.add_argument("--cfg-scale", type=non_negative_float, default=None,
                        help=f"guidance scale of --conditioning text_to_image ({FROM_CONFIG})")
    parser.add_argument("--cfg-text-scale", type=non_negative_float, default=None,
                        help=f"guidance towards the instruction, --conditioning edit ({FROM_CONFIG})")
    parser.add_argument("--edit-size", type=positive_int, default=None,
                        help="editing crop budget in pixels: crops hold at most (edit_size / 32)^2 cells of 32 px "
                             "(default: the processor's, 512)")
    parser.add_argument("--no-blend", dest="blend", action="store_false",
                        help="keep the decoder's pixels everywhere (default: paste the source back outside the mask)")
    parser.add_argument("--blend-radius", type=non_negative_int, default=8,
                        help="feather of the pasted-back border, in output pixels (default: 8)")
    add_decoder_options(parser)
    parser.add_argument("--save-codes", metavar="JSON", default=None, help="also write the result's codes")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """`llada-uni inpaint` (`outpaint.py` registers `llada-uni outpaint` with [`add_outpaint_parser`])."""
    inpaint = subparsers.add_parser(
        "inpaint", help="regenerate the masked region of a picture",
        description="Inpainting: the picture and the mask (white = repaint) get the editing crop, the mask is mapped "
                    "onto the code grid, the language model regenerates the masked codes only, the decoder renders "
                    "them and the source is pasted back outside the mask.",
    )
    add_common_options(inpaint)
    inpaint.add_argument("--mask", type=existing_file, required=True,
                         help="mask picture of the source's size, white = repaint")
    inpaint.add_argument("--mask-threshold", type=_fraction, default=None,
                         help="fraction of a code's 16 x 16 px the mask must cover (default: any pixel)")
    inpaint.add_argument("--mask-dilation", type=non_negative_int, default=0,
                         help="grow the masked region by this many codes (default: 0)")
    inpaint.add_argument("--output", default="llada-uni-inpaint.png",
                         help="image file to write; its extension picks the format (default: llada-uni-inpaint.png)")
    _add_shared_options(inpaint)
    return inpaint


def add_outpaint_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    outpaint = subparsers.add_parser(
        "outpaint", help="extend a picture onto a larger canvas",
        description="Outpainting: the source codes are placed on a larger canvas (cells added with --pad-*, or a "
                    "--canvas-size grid with the source centred) and the language model generates the new cells.",
    )
    add_common_options(outpaint)
    for side in ("left", "right", "top", "bottom"):
        outpaint.add_argument(f"--pad-{side}", type=non_negative_int, default=0,
                              help=f"codes (32 px each in the output) added on the {side} (default: 0)")
    outpaint.add_argument("--canvas-size", type=positive_int, nargs=2, metavar=("ROWS", "COLUMNS"), default=None,
                          help="the canvas grid in codes instead of --pad-*, the source centred")
    outpaint.add_argument("--output", default="llada-uni-outpaint.png",
                          help="image file to write; its extension picks the format (default: llada-uni-outpaint.png)")
    _add_shared_options(outpaint)
    return outpaint


def run(args: argparse.Namespace) -> int:
    from diffusers_llada_uni import LLaDAUniInpaintPipeline

    output = image_output(args.output)
    codes_file = json_output(args.save_codes) if args.save_codes else None
    picture = load_picture(args.image)
    if args.command == "inpaint":
        region = {"mask_image": load_picture(args.mask), "mask_threshold": args.mask_threshold,
                  "mask_dilation": args.mask_dilation}
    else:
        region = {"pad_left": args.pad_left, "pad_right": args.pad_right, "pad_top": args.pad_top,
                  "pad_bottom": args.pad_bottom, "canvas_size": tuple(args.canvas_size) if args.canvas_size else None}
    path, _ = open_model(args)
    pipe = load_pipeline(LLaDAUniInpaintPipeline, path, args, decoders=(args.decoder,))
    out = pipe(
        image=picture, prompt=args.prompt, conditioning=args.conditioning, **region,
        blend_unmasked=args.blend, blend_radius=args.blend_radius, steps=args.steps, block_length=args.block_length,
        cfg_scale=args.cfg_scale, cfg_text_scale=args.cfg_text_scale,
        image_kwargs={"edit_image_size": args.edit_size} if args.edit_size else None,
        decoder=args.decoder, num_inference_steps=args.decoder_steps, generator=seeded(args.seed),
    )
    (h, w), codes, image = out.grid_sizes[0], out.image_tokens[0], out.images[0]
    if codes_file is not None:
        save_codes(codes_file, codes, h, w, prompt=args.prompt)
    save_image(image, output)
    print(f"Wrote {output} ({image.width} x {image.height} px, {h} x {w} codes, "
          f"{int(out.repaint_masks[0].sum())} regenerated)")
    return 0
