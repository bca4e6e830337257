# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""`llada-uni chat`: an interactive conversation in the terminal, with pictures in and out."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from .common import (
    add_common_options,
    add_decoder_options,
    add_generation_options,
    load_picture,
    load_pipeline,
    open_model,
    positive_int,
    save_image,
    save_text,
    seeded,
)

HELP = ("Type a message and press Enter. `/image PATH` attaches a picture to your next message (repeat for several); "
        "`/quit` (or end of input) ends the conversation.")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "chat", help="talk with the model about pictures; it answers in text and pictures",
        description="Interactive conversation: each answer may interleave text and pictures; the pictures it draws "
                    "are saved next to the transcript. " + HELP,
    )
    add_common_options(parser)
    parser.add_argument("--transcript", default="llada-uni-chat.md",
                        help="Markdown transcript to write after every turn (default: llada-uni-chat.md); pictures "
                             "go next to it as <name>-<turn>-<n>.png")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing transcript")
    add_generation_options(parser)
    parser.add_argument("--max-new-tokens", type=positive_int, default=512,
                        help="most tokens per answer, pictures included (default: 512)")
    parser.add_argument("--image-steps", type=positive_int, default=None,
                        help="denoising steps per picture block (default: the model's generation config)")
    add_decoder_options(parser)
    return parser


def run(args: argparse.Namespace, stdin: TextIO | None = None) -> int:
    from diffusers_llada_uni import LLaDAUniInterleavedPipeline

    stdin = stdin or sys.stdin
    transcript = Path(args.transcript)
    if transcript.suffix.lower() != ".md":
        raise ValueError(f"transcript {str(transcript)!r} must end in .md.")
    if transcript.exists() and not args.overwrite:
        raise ValueError(f"transcript {str(transcript)!r} exists; pass --overwrite to replace it or choose another.")
    path, _ = open_model(args)
    pipe = load_pipeline(LLaDAUniInterleavedPipeline, path, args, decoders=(args.decoder,))
    print(HELP, file=sys.stderr)
    generator = seeded(args.seed)
    lines, pending, history, messages, turn = [], [], None, [], 0
    for raw in stdin:
        line = raw.strip()
        if line == "/quit":
            break
        if line.startswith("/image"):
            picture = Path(line[len("/image"):].strip())
            try:
                pending.append((picture, load_picture(picture)))
            except Exception as err:  # one line, and the conversation goes on
                print(f"llada-uni chat: error: {err}", file=sys.stderr)
            continue
        if not line:
            continue
        turn += 1
        parts = [{"type": "image", "image": image} for _, image in pending]
        user = {"role": "user", "content": parts + [{"type": "text", "text": line}]}
        output = pipe(messages + [user], history=history, steps=args.steps, block_length=args.block_length,
                      image_steps=args.image_steps, max_new_tokens=args.max_new_tokens, decoder=args.decoder,
                      num_inference_steps=args.decoder_steps, generator=generator)
        history, messages = output.history, output.history.messages
        lines += [f"**You:** {line}"] + [f"![your picture]({p})" for p, _ in pending] + ["", "**LLaDA-Uni:**"]
        pending = []
        pictures = 0
        for segment in output.segments:
            if segment["type"] == "text":
                print(segment["text"])
                lines.append(segment["text"])
                continue
            pictures += 1
            saved = save_image(segment["image"], transcript.with_name(f"{transcript.stem}-{turn}-{pictures}.png"))
            print(f"[picture: {saved}]")
            lines.append(f"![picture {pictures}]({saved.name})")
        lines.append("")
        save_text(transcript, "\n".join(lines) + "\n")
    if turn:
        print(f"Wrote {transcript} ({turn} turns)", file=sys.stderr)
    return 0
