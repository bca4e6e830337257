# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""`llada-uni understand`: answer a question about one or several images, one `LLaDAUniUnderstandingPipeline` call."""

from __future__ import annotations

import argparse

from .common import (
    FROM_CONFIG,
    add_common_options,
    add_generation_options,
    existing_file,
    load_picture,
    load_pipeline,
    open_model,
    positive_int,
    seeded,
)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
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
    add_generation_options(parser)
    parser.add_argument("--gen-length", type=positive_int, default=None,
                        help=f"most tokens to write ({FROM_CONFIG}, `max_new_tokens` or `gen_length`)")
    parser.add_argument("--chat-template", action="store_true",
                        help="wrap image and question in the tokenizer's chat template (default: the original's "
                             "plain prompt)")
    return parser


def run(args: argparse.Namespace) -> int:
    from diffusers_llada_uni import LLaDAUniUnderstandingPipeline

    pictures = [load_picture(picture) for picture in args.image]
    path, _ = open_model(args)
    pipe = load_pipeline(LLaDAUniUnderstandingPipeline, path, args)
    # One nested list: the pictures share a prompt, so they get the several-images budget.
    answer = pipe(
        image=pictures[0] if len(pictures) == 1 else [pictures], prompt=args.question, steps=args.steps,
        block_length=args.block_length, gen_length=args.gen_length, use_chat_template=args.chat_template,
        generator=seeded(args.seed),
    ).text[0]
    print(answer)
    return 0
