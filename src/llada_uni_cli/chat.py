# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""`llada-uni chat`: an interactive conversation in the terminal, with pictures in and out."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from .common import add_common_options, positive_int
from .runtime import RANDOM_WEIGHTS_BANNER, ModelBundle, save_image
from .t2i import add_decoder_options, add_generation_options

HELP = ("Type a message and press Enter. `/image PATH` attaches a picture to your next message (repeat for several); "
        "`/quit` (or end of input) ends the conversation.")


def add_parser(subparsers) -> argparse.ArgumentParser:
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
    add_generation_options(parser, steps_default=32)
    parser.add_argument("--max-new-tokens", type=positive_int, default=512,
                        help="most tokens per answer, pictures included (default: 512)")
    parser.add_argument("--image-steps", type=positive_int, default=8, help="denoising steps per picture block")
    add_decoder_options(parser)
    return parser


def _write_atomic(path: Path, text: str):
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def run(args, stdin=None) -> int:
    stdin = stdin or sys.stdin
    transcript = Path(args.transcript)
    if transcript.suffix.lower() != ".md":
        raise ValueError(f"transcript {str(transcript)!r} must end in .md.")
    if transcript.exists() and not args.overwrite:
        raise ValueError(f"transcript {str(transcript)!r} exists; pass --overwrite to replace it or choose another.")
    bundle = ModelBundle(args.model, device=args.device, dtype=args.dtype, progress=args.progress)
    if bundle.random_weights:
        print(RANDOM_WEIGHTS_BANNER, file=sys.stderr)
    print(HELP, file=sys.stderr)
    generator = torch.Generator(device="cpu").manual_seed(args.seed)
    lines, pending, history, messages, turn = [], [], None, [], 0
    for raw in stdin:
        line = raw.strip()
        if line == "/quit":
            break
        if line.startswith("/image"):
            path = Path(line[len("/image"):].strip())
            if not path.is_file():
                print(f"llada-uni chat: error: no picture at {str(path)!r}.", file=sys.stderr)
                continue
            pending.append(path)
            continue
        if not line:
            continue
        try:
            parts = [{"type": "image", "image": bundle.encode_image(str(p), mode="understand")} for p in pending]
        except (ValueError, TypeError, OSError) as err:
            print(f"llada-uni chat: error: {err}", file=sys.stderr)
            pending = []
            continue
        turn += 1
        user = {"role": "user", "content": parts + [{"type": "text", "text": line}]}
        with torch.no_grad():
            output = bundle.model.chat(messages + [user], history=history, steps=args.steps,
                                       block_length=args.block_length, image_steps=args.image_steps,
                                       max_new_tokens=args.max_new_tokens, generator=generator,
                                       **bundle.generation_kwargs())
        history, messages = output.history, output.history.messages
        lines += [f"**You:** {line}"] + [f"![your picture]({p})" for p in pending] + ["", "**LLaDA-Uni:**"]
        pending = []
        pictures = 0
        for segment in output.segments:
            if segment["type"] == "text":
                print(segment["text"])
                lines.append(segment["text"])
                continue
            pictures += 1
            image = segment["image"]
            codes = torch.tensor(image["image_tokens"]) - bundle.processor.special_token_ids.image_token_offset
            picture = bundle.decode(codes.view(image["h"], image["w"]), turbo=args.decoder == "turbo",
                                    seed=args.seed, steps=args.decoder_steps)
            path = save_image(picture, transcript.with_name(f"{transcript.stem}-{turn}-{pictures}.png"))
            print(f"[picture: {path}]")
            lines.append(f"![picture {pictures}]({path.name})")
        lines.append("")
        _write_atomic(transcript, "\n".join(lines) + "\n")
    if turn:
        print(f"Wrote {transcript} ({turn} turns)", file=sys.stderr)
    return 0
