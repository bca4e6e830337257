# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""`llada-uni understand`: answer a question about an image."""

from __future__ import annotations

import argparse
import sys

import torch

from .common import add_common_options, existing_file, positive_int
from .runtime import RANDOM_WEIGHTS_BANNER, ModelBundle


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "understand", help="answer a question about an image",
        description="Image understanding: the image tokenizer turns the picture into codes, the language model "
                    "answers the question about them; the answer is printed.",
    )
    add_common_options(parser)
    parser.add_argument("--image", type=existing_file, nargs="+", required=True,
                        help="picture to look at (PNG, JPEG, ...); several go into one prompt in the given order, each "
                             "resized for the several-images budget (448^2 px)")
    parser.add_argument("--question", default="Describe this image.", help="question (default: 'Describe this image.')")
    parser.add_argument("--steps", type=positive_int, default=32, help="denoising steps per block (default: 32)")
    parser.add_argument("--block-length", type=positive_int, default=32, help="tokens per block (default: 32)")
    parser.add_argument("--gen-length", type=positive_int, default=512, help="most tokens to write (default: 512)")
    parser.add_argument("--chat-template", action="store_true",
                        help="wrap image and question in the tokenizer's chat template (default: the original's "
                             "plain prompt)")
    return parser


def understand(bundle: ModelBundle, image, question: str, steps: int, block_length: int, gen_length: int,
               chat_template: bool, seed: int) -> str:
    """`image`: one picture, or a list of pictures for one prompt."""
    pictures = list(image) if isinstance(image, (list, tuple)) else [image]
    # One nested list: the pictures share a prompt, so they get the several-images budget.
    encoded = bundle.encode_image(pictures[0] if len(pictures) == 1 else [pictures], mode="understand")
    generator = torch.Generator(device="cpu").manual_seed(seed)
    with torch.no_grad():
        return bundle.model.understand_image(
            encoded if len(pictures) == 1 else encoded[0], question=question, steps=steps, block_length=block_length,
            gen_length=gen_length, use_chat_template=chat_template, generator=generator, **bundle.generation_kwargs(),
        )


def run(args) -> int:
    bundle = ModelBundle(args.model, device=args.device, dtype=args.dtype, progress=args.progress)
    if bundle.random_weights:
        print(RANDOM_WEIGHTS_BANNER, file=sys.stderr)
    text = understand(bundle, args.image, args.question, args.steps, args.block_length, args.gen_length,
                      args.chat_template, args.seed)
    print(text)
    return 0
