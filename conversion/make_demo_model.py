#!/usr/bin/env python
# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""Build the tiny demo model shipped in the package (`src/llada_uni_cli/demo_model/`) for `llada-uni demo`.

It is the project's tiny test checkpoint (`tests/fixtures/tiny-llada2-uni`, the released layout with RANDOM
weights: a 3-layer MoE backbone of width 64, a 2-block image tokenizer, width-32 decoders, a small VAE) converted
with the converter, without the remote-code files (the demo always runs with the package installed), and labelled
as random in its config (`llada_uni_random_weights: true`, which makes the CLI print a warning) and model card.

    python conversion/make_demo_model.py [--src tests/fixtures/tiny-llada2-uni] [--dst src/llada_uni_cli/demo_model]
"""

import argparse
import json
import sys
from pathlib import Path

from diffusers_llada_uni.saving_llada_uni import write_model_card
from llada_uni_conversion import convert


REPO = Path(__file__).resolve().parents[1]

NOTICE = """**RANDOM WEIGHTS: the llada-uni demo model.** This folder is the tiny model that `llada-uni demo` runs
without any download. Its weights are random (it is the project's tiny test checkpoint, converted), so its images are
noise and its text is gibberish: it only shows that text-to-image, understanding, editing and decoding run end to end.
For real results, convert the released LLaDA2.0-Uni checkpoint (`llada-uni convert SRC DST`) and pass `--model DST`.

Sizes: backbone 3 layers, width 64, 16 experts (4 per token), vocabulary 1088 (1024 text + 64 image codes); image
tokenizer 2 ViT blocks of width 32; decoders: Z-Image DiT width 32, 2 layers; VAE block widths as in the fixture.
Regenerate with `python conversion/make_demo_model.py --overwrite`."""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", type=Path, default=REPO / "tests" / "fixtures" / "tiny-llada2-uni")
    parser.add_argument("--dst", type=Path, default=REPO / "src" / "llada_uni_cli" / "demo_model")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)

    dst = convert(args.src, args.dst, overwrite=args.overwrite, verify=True, include_remote_code=False)
    config_path = dst / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["llada_uni_random_weights"] = True
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    write_model_card(dst, "end_to_end", remote_code=False, notice=NOTICE)
    size = sum(p.stat().st_size for p in dst.rglob("*") if p.is_file())
    print(f"Demo model written to {dst} ({size / 1e6:.1f} MB, random weights).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
