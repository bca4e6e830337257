"""Cost of inpainting against regenerating the whole picture by editing, on one engine.

A source grid of `--grid` x `--grid` codes (default 32 x 32) is inpainted under masks covering 10 %, 25 % and 50 % of
its cells, each of two shapes:
  - box: one centred rectangle (whole rows of codes fall in few blocks: most blocks hold no masked cell);
  - scattered: cells drawn at random (almost every block holds one: few blocks are skipped);
with editing-style conditioning (the source in the prompt, editing guidance), compared, in the same run, with
`model.edit_image` regenerating every cell (the baseline, = a full mask); and with text-to-image conditioning (the
caption only, classifier-free guidance) against `model.generate_image` of the whole grid. Blocks with no masked cell
run no forward,
so the forwards follow the blocks the mask touches. It prints the masked cells, the blocks holding one, the forwards
(NFE) and the wall time, each with its ratio to the baseline, and checks that every unmasked code is the source's. The forwards are exact counts; the wall time of a
shared CPU is noisy (a run on an idle machine or a GPU gives the cleaner time ratios).

    python benchmarks/bench_inpaint.py                  # the tiny checkpoint of the tests (random weights)
    python benchmarks/bench_inpaint.py --mid            # a random mid-size model (bench_generate's), slower
"""

import argparse
import functools
import logging
import pathlib
import sys
import time

import torch
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast
from transformers.utils import logging as hf_logging

import transformers_llada_uni  # noqa: F401  (registers the Auto classes)
from transformers_llada_uni.prompting_llada_uni import (
    build_editing_prompts,
    build_text_to_image_prompt,
    get_special_token_ids,
)


print = functools.partial(print, flush=True)  # noqa: A001

TINY = pathlib.Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "tiny-llada2-uni"


def masks(grid: int, fraction: float, seed: int) -> dict[str, torch.BoolTensor]:
    cells = round(grid * grid * fraction)
    rows = max(1, round(cells**0.5))
    cols = -(-cells // rows)
    top, left = (grid - rows) // 2, (grid - cols) // 2
    rectangle = torch.zeros(rows * cols, dtype=torch.bool)
    rectangle[:cells] = True  # a near-square rectangle, its last row cut to the exact count
    box = torch.zeros(grid, grid, dtype=torch.bool)
    box[top : top + rows, left : left + cols] = rectangle.view(rows, cols)
    scattered = torch.zeros(grid * grid, dtype=torch.bool)
    scattered[torch.randperm(grid * grid, generator=torch.Generator().manual_seed(seed))[:cells]] = True
    return {"box": box, "scattered": scattered.view(grid, grid)}


def blocks_touched(prompt_length: int, mask: torch.BoolTensor, block_length: int) -> int:
    """Blocks of the canvas that hold a masked cell (the layout's block alignment: position 0 of the sequence)."""
    positions = prompt_length + torch.nonzero(mask.flatten()).flatten()
    return len(set((positions // block_length).tolist()))


def timed(device, fn):
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return result, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grid", type=int, default=32, help="grid side in codes (default: 32)")
    parser.add_argument("--steps", type=int, default=8, help="steps per block (default: 8, editing's default)")
    parser.add_argument("--block-length", type=int, default=32)
    parser.add_argument("--mid", action="store_true", help="a random mid-size model instead of the tiny checkpoint")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--conditioning", choices=("edit", "text_to_image", "both"), default="both")
    args = parser.parse_args()
    device = torch.device(args.device)
    hf_logging.disable_progress_bar()
    # The tiny checkpoint has 2048 positions; a 32 x 32 edit reaches ~2100 (a warning per call, harmless here).
    logging.getLogger("transformers_llada_uni").setLevel(logging.ERROR)
    torch.manual_seed(args.seed)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(TINY)
    if args.mid:
        sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
        from bench_generate import build_model

        model = build_model(device, torch.float32, args.block_length)
        label = "random mid-size model (hidden 512, 8 layers, 64 experts)"
    else:
        model = AutoModelForCausalLM.from_pretrained(TINY).to(device).eval()
        label = f"tiny checkpoint {TINY.name} (random weights)"
    special = get_special_token_ids(tokenizer, model.config)
    grid, instruction = args.grid, "Replace the masked region with a red armchair."
    codes = torch.randint(0, min(special.image_codebook_size, 16384), (grid * grid,),
                          generator=torch.Generator().manual_seed(args.seed))
    source = {"image_tokens": (codes + special.image_token_offset).tolist(), "h": grid, "w": grid}
    settings = {"steps": args.steps, "block_length": args.block_length, "tokenizer": tokenizer}
    prompt_length = len(build_editing_prompts(tokenizer, source["image_tokens"], grid, grid, instruction)[0])

    print(f"{label}, {device}; {grid} x {grid} grid, {args.steps} steps per block of {args.block_length}; editing "
          f"prompt {prompt_length} tokens")
    conditionings = ("edit", "text_to_image") if args.conditioning == "both" else (args.conditioning,)
    header = f"{'mask':<26}{'cells':>7}{'blocks':>8}{'forwards':>10}{'x full':>8}{'time s':>9}{'x full':>8}"
    for conditioning in conditionings:
        if conditioning == "edit":
            whole = functools.partial(model.edit_image, source, instruction=instruction)
            caption, length, name = instruction, prompt_length, "full picture (edit)"
        else:
            caption = "A living room with a red armchair."
            whole = functools.partial(model.generate_image, caption, image_h=grid * 32, image_w=grid * 32,
                                      cfg_scale=2.0)
            length = len(build_text_to_image_prompt(tokenizer, caption, grid, grid))
            name = "full picture (t2i)"
        extra = {} if conditioning == "edit" else {"conditioning": conditioning, "cfg_scale": 2.0}
        print(f"\n{conditioning} conditioning ({length}-token prompt)")
        whole(**{**settings, "steps": 1})  # warm-up
        full, full_time = timed(device, lambda: whole(**settings))
        all_blocks = blocks_touched(length, torch.ones(grid, grid, dtype=torch.bool), args.block_length)
        print(header)
        print("-" * len(header))
        print(f"{name:<26}{grid * grid:>7}{all_blocks:>8}{full.num_forward_passes:>10}{1.0:>8.2f}"
              f"{full_time:>9.3f}{1.0:>8.2f}")
        for fraction in (0.10, 0.25, 0.50):
            for shape, mask in masks(grid, fraction, args.seed).items():
                result, seconds = timed(device, lambda: model.inpaint_image(source, mask=mask, prompt=caption,
                                                                            **settings, **extra))
                kept = result.token_ids.view(grid, grid).cpu()[~mask]
                if not torch.equal(kept, codes.view(grid, grid)[~mask]):
                    raise AssertionError("an unmasked code changed")
                row = f"{shape} {fraction:.0%}"
                print(f"{row:<26}{int(mask.sum()):>7}{blocks_touched(length, mask, args.block_length):>8}"
                      f"{result.num_forward_passes:>10}{result.num_forward_passes / full.num_forward_passes:>8.2f}"
                      f"{seconds:>9.3f}{seconds / full_time:>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
