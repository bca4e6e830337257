# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""`llada-uni demo`: text-to-image, understanding of that image and an edit of it, with no download.

By default it runs the tiny model shipped inside this package. Its weights are RANDOM: the pictures are noise and
the text is gibberish; the demo shows that every stage runs end to end. Pass `--model` to run a real checkpoint.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import DEMO_MODEL_DIR
from .common import add_common_options, positive_int
from .edit import edit
from .runtime import RANDOM_WEIGHTS_BANNER, ModelBundle, save_codes, save_image
from .t2i import text_to_image
from .understand import understand


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "demo", help="run text-to-image, understanding and editing on a tiny bundled model (no download)",
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


def run(args) -> int:
    out = args.output_dir
    out.mkdir(parents=True, exist_ok=True)
    bundle = ModelBundle(args.model, device=args.device, dtype=args.dtype, progress=args.progress)
    if bundle.random_weights:
        print(RANDOM_WEIGHTS_BANNER)
    print(f"Model: {bundle.path} ({bundle.layout} layout)")

    print(f"[1/3] Text-to-image: {args.prompt!r}")
    result = text_to_image(bundle, args.prompt, args.size, args.size, args.steps, 32, 4.0, False, False, args.seed)
    save_codes(out / "t2i_codes.json", result.token_ids, result.h, result.w, prompt=args.prompt)
    t2i_image = bundle.decode(result.token_ids.view(result.h, result.w), turbo=True, seed=args.seed,
                              steps=args.decoder_steps)
    t2i_png = save_image(t2i_image, out / "t2i.png")

    print(f"[2/3] Understanding: {args.question!r}")
    answer = understand(bundle, t2i_png, args.question, args.steps, 32, args.gen_length, False, args.seed)
    answer_file = out / "understanding.txt"
    label = "(random weights: this text is noise)\n" if bundle.random_weights else ""
    answer_file.write_text(f"{label}Q: {args.question}\nA: {answer}\n", encoding="utf-8")
    print(f"Answer: {answer!r}")

    print(f"[3/3] Editing: {args.instruction!r}")
    bundle.edit_image_size = args.edit_size
    edited = edit(bundle, t2i_png, args.instruction, args.steps, 32, 4.0, 0.0, args.seed)
    save_codes(out / "edit_codes.json", edited.token_ids, edited.h, edited.w, instruction=args.instruction)
    edited_image = bundle.decode(edited.token_ids.view(edited.h, edited.w), turbo=True, seed=args.seed,
                                 steps=args.decoder_steps)
    edit_png = save_image(edited_image, out / "edit.png")

    print("\nDone. Files:")
    for path in (t2i_png, answer_file, edit_png):
        print(f"  {path.resolve()}")
    if bundle.random_weights:
        print(RANDOM_WEIGHTS_BANNER)
    sys.stdout.flush()
    return 0
