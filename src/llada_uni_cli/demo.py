# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""`llada-uni demo`: text-to-image, understanding of that image, an edit and an inpainting of it, with no download.

By default it runs the tiny model shipped inside this package. Its weights are RANDOM: the pictures are noise and
the text is gibberish; the demo shows that every stage runs end to end. Pass `--model` to run a real checkpoint.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import DEMO_MODEL_DIR
from .common import (
    RANDOM_WEIGHTS_BANNER,
    add_common_options,
    load_picture,
    load_pipeline,
    open_model,
    positive_int,
    save_codes,
    save_image,
    save_text,
    seeded,
)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "demo", help="run text-to-image, understanding, editing and inpainting on a tiny bundled model (no download)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_common_options(
        parser, model_required=False, model_default=DEMO_MODEL_DIR,
        model_help="model folder (default: the tiny random-weight demo model shipped in the package)",
    )
    parser.add_argument("--output-dir", type=Path, default=Path("llada-uni-demo"),
                        help="where the PNGs and the text go (default: ./llada-uni-demo)")
    parser.add_argument("--prompt", default="A red fox in the snow", help="text-to-image prompt")
    parser.add_argument("--question", default="Describe this image.", help="question about the generated image")
    parser.add_argument("--instruction", default="Make it a watercolor painting.", help="editing instruction")
    parser.add_argument("--inpaint-prompt", default="Put a red hat on it.",
                        help="inpainting instruction for the picture's top-left quarter")
    parser.add_argument("--size", type=positive_int, default=256,
                        help="text-to-image size in pixels (default: 256, an 8 x 8 code grid)")
    parser.add_argument("--edit-size", type=positive_int, default=128,
                        help="editing crop budget in pixels: crops hold at most (edit_size / 32)^2 cells of 32 px "
                             "(default: 128, an 8 x 8 code grid)")
    parser.add_argument("--decoder-steps", type=positive_int, default=4,
                        help="DiT evaluations of the turbo decoder (default: 4)")
    parser.add_argument("--steps", type=positive_int, default=8, help="denoising steps per block (default: 8)")
    parser.add_argument("--gen-length", type=positive_int, default=32,
                        help="most tokens of the answer (default: 32)")
    return parser


def run(args: argparse.Namespace) -> int:
    from PIL import Image

    from diffusers_llada_uni import (
        LLaDAUniImageEditPipeline,
        LLaDAUniInpaintPipeline,
        LLaDAUniTextToImagePipeline,
        LLaDAUniUnderstandingPipeline,
    )

    out = args.output_dir
    path, random_weights = open_model(args, banner_file=sys.stdout)
    print(f"Model: {path}")
    t2i = load_pipeline(LLaDAUniTextToImagePipeline, path, args, decoders=("turbo",))
    # The three tasks share the loaded parts.
    reader = LLaDAUniUnderstandingPipeline(**t2i.components)
    editor = LLaDAUniImageEditPipeline(**t2i.components)
    painter = LLaDAUniInpaintPipeline(**t2i.components)
    decoding = {"decoder": "turbo", "num_inference_steps": args.decoder_steps}

    print(f"[1/4] Text-to-image: {args.prompt!r}")
    result = t2i(args.prompt, height=args.size, width=args.size, steps=args.steps, block_length=32, cfg_scale=4.0,
                 generator=seeded(args.seed), **decoding)
    (h, w), = result.grid_sizes
    save_codes(out / "t2i_codes.json", result.image_tokens[0], h, w, prompt=args.prompt)
    t2i_png = save_image(result.images[0], out / "t2i.png")

    print(f"[2/4] Understanding: {args.question!r}")
    answer = reader(image=load_picture(t2i_png), prompt=args.question, steps=args.steps, block_length=32,
                    gen_length=args.gen_length, generator=seeded(args.seed)).text[0]
    label = "(random weights: this text is noise)\n" if random_weights else ""
    answer_file = save_text(out / "understanding.txt", f"{label}Q: {args.question}\nA: {answer}\n")
    print(f"Answer: {answer!r}")

    print(f"[3/4] Editing: {args.instruction!r}")
    edited = editor(image=load_picture(t2i_png), prompt=args.instruction, steps=args.steps, block_length=32,
                    cfg_text_scale=4.0, cfg_image_scale=0.0, image_kwargs={"edit_image_size": args.edit_size},
                    generator=seeded(args.seed), **decoding)
    (h, w), = edited.grid_sizes
    save_codes(out / "edit_codes.json", edited.image_tokens[0], h, w, instruction=args.instruction)
    edit_png = save_image(edited.images[0], out / "edit.png")

    print(f"[4/4] Inpainting the top-left quarter: {args.inpaint_prompt!r}")
    picture = load_picture(t2i_png)
    mask = Image.new("L", picture.size)  # white = repaint (diffusers' convention)
    mask.paste(255, (0, 0, picture.width // 2, picture.height // 2))
    inpainted = painter(image=picture, mask_image=mask, prompt=args.inpaint_prompt, steps=args.steps,
                        block_length=32, image_kwargs={"edit_image_size": args.size}, generator=seeded(args.seed),
                        **decoding)
    inpaint_png = save_image(inpainted.images[0], out / "inpaint.png")

    print("\nDone. Files:")
    for file in (t2i_png, answer_file, edit_png, inpaint_png):
        print(f"  {file.resolve()}")
    if random_weights:
        print(RANDOM_WEIGHTS_BANNER)
    sys.stdout.flush()
    return 0
