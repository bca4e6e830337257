"""Speed of LLaDA2.0-Uni block-diffusion generation: this engine vs the original way vs diffusers' LLaDA2Pipeline.

A random mid-size model (hidden 512, 8 layers, 64 experts, the real vocabulary of 173568 ids) generates
  - text: `--gen-length` tokens after a `--prompt-length`-token prompt (default 256 after 512);
  - text-to-image: a `--grid` x `--grid` code grid (default 32 x 32) with classifier-free guidance,
each driven these ways, measured in the same run:
  (a) this engine: `model.generate` / `model.generate_image` (cache of finished blocks, LM head on the block only,
      both guidance branches in one forward);
  (b) the original way: every step recomputes the whole window `x[:, :block_end]` and the LM head runs on every
      window position (the original `generate_bd` / `generate_image` loop, re-implemented here on the same model);
  (c) diffusers' `LLaDA2Pipeline` + `BlockRefinementScheduler` on the same model (text only: the pipeline has no
      image guidance);
  (s) this engine with SPRINT at the original's defaults (`use_sprint=True`: prefix cache pruned to 70 %, 2 warm-up
      forwards per block, importance 0.5 key norm + 0.5 confidence, text pinned): an approximation, so its ids may
      differ from (a)'s; the report gives how many agree.
It prints wall time, NFE (model forwards), tokens per forward, tokens per second and peak memory (CUDA: max
allocated; CPU: peak resident-set growth during the call), and asserts that (a) and (b) produce the same ids.

    python benchmarks/bench_generate.py            # the sizes above
    python benchmarks/bench_generate.py --small    # a quick run (128-token prompt, 64 tokens, 8 x 8 grid)
"""

import argparse
import functools
import os
import pathlib
import threading
import time

import torch
from transformers import PreTrainedTokenizerFast
from transformers.utils import logging as hf_logging

from transformers_llada_uni import LLaDAUniConfig, LLaDAUniForConditionalGeneration
from transformers_llada_uni.prompting_llada_uni import (
    build_text_to_image_prompt,
    build_text_to_image_unconditional_prompt,
)


print = functools.partial(print, flush=True)  # noqa: A001  (progress shows up when redirected to a file)

FIXTURE_TOKENIZER = pathlib.Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "tiny-llada2-uni"


def build_model(device, dtype, block_length):
    torch.manual_seed(0)
    config = LLaDAUniConfig(
        vocab_size=173568, hidden_size=512, intermediate_size=1408, num_hidden_layers=8, num_attention_heads=8,
        num_key_value_heads=2, head_dim=64, num_experts=64, num_experts_per_tok=4, n_group=4, topk_group=2,
        moe_intermediate_size=256, num_shared_experts=1, first_k_dense_replace=1, block_length=block_length,
    )
    model = LLaDAUniForConditionalGeneration(config)
    # On CPU the per-expert loop beats the grouped kernels for block-sized inputs; every way uses the same model.
    if device.type == "cpu":
        model.set_experts_implementation("eager")
    with torch.no_grad():
        # A sharper random LM head gives confident, well separated predictions (fewer near-ties in float32).
        model.lm_head.weight.mul_(8.0)
    return model.to(device=device, dtype=dtype).eval()


class PeakMemory:
    """Peak memory of a block of code: CUDA max-allocated, or the growth of the process's resident set on CPU."""

    def __init__(self, device):
        self.device = torch.device(device)

    @staticmethod
    def _rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _poll(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            time.sleep(0.005)

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        else:
            self.base = self.peak = self._rss()
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._poll, daemon=True)
            self._thread.start()
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak_bytes = torch.cuda.max_memory_allocated() - self.base
        else:
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, self._rss())
            self.peak_bytes = self.peak - self.base
        self.seconds = time.perf_counter() - self.start


def measure_interleaved(device, repeats, fns):
    """Run every way once per round, for `repeats` rounds, and keep each way's fastest run: on a shared machine the
    load changes from minute to minute, so interleaving exposes every way to the same conditions."""
    results, best = [None] * len(fns), [None] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            with PeakMemory(device) as mem:
                results[i] = fn()
            if best[i] is None or mem.seconds < best[i].seconds:
                best[i] = mem
    return results, best


# ------------------------------------------------------------------------------------------- (b) the original way
def transfer_schedule(block_length, steps):
    base, extra = divmod(block_length, steps)
    return [base + 1 if i < extra else base for i in range(steps)]


@torch.no_grad()
def original_way(model, branches, gen_length, block_length, steps, threshold, mask_id, guidance=None):
    """The original loop: per step, forward the whole window and take logits for every window position.

    `branches` are the prompts of one sample's guidance branches (the first is the longest); shorter ones are
    left-padded with the mask id, their pad columns hidden and their positions starting at their first token.
    `guidance` = (scale, rescale, image_low, image_high) for text-to-image, None for text.
    """
    device = model.device
    prompt_len = len(branches[0])
    steps = min(steps, gen_length)
    num_blocks = (prompt_len + gen_length + block_length - 1) // block_length
    total = num_blocks * block_length
    x = torch.full((len(branches), total), mask_id, dtype=torch.long, device=device)
    starts = []
    for row, prompt in enumerate(branches):
        starts.append(prompt_len - len(prompt))
        x[row, starts[-1] : prompt_len] = torch.tensor(prompt, device=device)
    starts = torch.tensor(starts, device=device)
    cols = torch.arange(total, device=device)
    block_causal = (cols[None, :] // block_length) <= (cols[:, None] // block_length)
    mask = block_causal[None] & (cols[None, None, :] >= starts[:, None, None])
    empty = ~mask.any(-1, keepdim=True)
    mask |= empty & torch.eye(total, dtype=torch.bool, device=device)[None]
    positions = (cols[None, :] - starts[:, None]).clamp(min=0)
    schedule = transfer_schedule(block_length, steps)
    nfe = 0
    for block in range(prompt_len // block_length, num_blocks):
        end = (block + 1) * block_length
        for step in range(steps + 1):
            active = x[0, end - block_length : end] == mask_id
            if not active.any():
                break
            logits = model(x[:, :end], attention_mask=mask[:, None, :end, :end], position_ids=positions[:, :end]).logits
            nfe += 1
            logits = logits[:, -block_length:].float()
            if guidance is None:
                final = logits[0]
            else:
                scale, rescale, low, high = guidance
                cond, uncond = logits[0], logits[1]
                final = uncond + scale * (cond - uncond)
                rescaled = final * (cond.std(dim=-1, keepdim=True) / (final.std(dim=-1, keepdim=True) + 1e-6))
                final = rescale * rescaled + (1 - rescale) * final
                final[..., :low] = float("-inf")
                final[..., high:] = float("-inf")
            x0 = final.argmax(-1)
            p = final.softmax(-1).gather(-1, x0[:, None])[:, 0]
            confidence = torch.where(active, p, torch.full_like(p, float("-inf")))
            wanted = schedule[step] if step < len(schedule) else int(active.sum())
            high_conf = confidence > threshold
            if int(high_conf.sum()) >= wanted:
                transfer = high_conf
            else:
                transfer = torch.zeros_like(active)
                transfer[torch.topk(confidence, min(wanted, int(active.sum()))).indices] = True
            x[:, end - block_length : end] = torch.where(transfer, x0, x[:, end - block_length : end])
    return x[0, prompt_len : prompt_len + gen_length], nfe


# ------------------------------------------------------------------------------------------- reporting
SPRINT_ROW = "(s) this engine + SPRINT, original defaults"


def report(rows, generated_tokens):
    print(f"  {'way':<44} {'wall s':>8} {'NFE':>5} {'tok/fwd':>8} {'tok/s':>8} {'peak MiB':>9}")
    for name, seconds, nfe, peak in rows:
        print(
            f"  {name:<44} {seconds:8.2f} {nfe:5d} {generated_tokens / nfe:8.2f} {generated_tokens / seconds:8.2f} "
            f"{peak / 2**20:9.1f}"
        )
    base, base_nfe = rows[0][1], rows[0][2]
    for name, seconds, nfe, _ in rows[1:]:
        if name == SPRINT_ROW:
            print(f"  (s) is {base / seconds:.2f}x the speed of (a), with {nfe} forwards against (a)'s {base_nfe} "
                  "(its cached steps run the block alone against the pruned prefix)")
        else:
            print(f"  (a) is {seconds / base:.2f}x faster than {name}")


def agreement(ids, reference):
    same = sum(int(a == b) for a, b in zip(ids, reference))
    return f"(s) ids equal to (a)'s: {same}/{len(reference)}"


def bench_text(model, args, device):
    mask_id, eos_id = model.config.mask_token_id, model.config.eos_token_id
    torch.manual_seed(1)
    prompt = torch.randint(0, 150000, (1, args.prompt_length), device=device)
    settings = dict(gen_length=args.gen_length, block_length=args.block_length, steps=args.steps,
                    threshold=args.threshold, eos_early_stop=False)
    model.generate(prompt[:, :64], **{**settings, "gen_length": args.block_length})  # warm-up
    ways = [
        lambda: model.generate(prompt, return_dict_in_generate=True, **settings),
        lambda: original_way(model, [prompt[0].tolist()], args.gen_length, args.block_length, args.steps,
                             args.threshold, mask_id),
        lambda: model.generate(prompt, return_dict_in_generate=True, use_sprint=True, **settings),
    ]
    calls = []
    if not args.skip_diffusers:
        from diffusers import BlockRefinementScheduler, LLaDA2Pipeline

        pipe = LLaDA2Pipeline(model=model, scheduler=BlockRefinementScheduler(block_length=args.block_length))
        pipe.set_progress_bar_config(disable=True)

        def diffusers_way():
            calls.clear()
            return pipe(input_ids=prompt, use_chat_template=False, gen_length=args.gen_length,
                        block_length=args.block_length, num_inference_steps=args.steps, temperature=0.0,
                        sampling_method="greedy", threshold=args.threshold, editing_threshold=None,
                        eos_early_stop=False, mask_token_id=mask_id, eos_token_id=eos_id, output_type="seq")

        ways.append(diffusers_way)
    handle = model.register_forward_hook(lambda *a: calls.append(1))
    try:
        results, mems = measure_interleaved(device, args.repeats, ways)
    finally:
        handle.remove()
    out, (ids_b, nfe_b) = results[0], results[1]
    ids_a = out.sequences[0, args.prompt_length :]
    assert ids_a.tolist() == ids_b.tolist(), "this engine and the original way generated different text ids"
    sprint = results[2]
    rows = [("(a) this engine", mems[0].seconds, out.num_forward_passes, mems[0].peak_bytes),
            ("(b) original way (full window, full logits)", mems[1].seconds, nfe_b, mems[1].peak_bytes),
            (SPRINT_ROW, mems[2].seconds, sprint.num_forward_passes, mems[2].peak_bytes)]
    note = "  " + agreement(sprint.sequences[0, args.prompt_length :].tolist(), ids_a.tolist())
    if not args.skip_diffusers:
        rows.append(("(c) diffusers LLaDA2Pipeline", mems[3].seconds, len(calls), mems[3].peak_bytes))
        same = results[3].sequences[0, : args.gen_length].tolist() == ids_a.tolist()
        note += f"\n  (c) ids {'equal' if same else 'differ from'} (a)'s"
    print(f"text: {args.gen_length} tokens after a {args.prompt_length}-token prompt, block {args.block_length}, "
          f"{args.steps} steps/block; (a) == (b) ids: True")
    report(rows, args.gen_length)
    if note:
        print(note)


def bench_image(model, args, device):
    tokenizer = PreTrainedTokenizerFast.from_pretrained(FIXTURE_TOKENIZER)
    grid = args.grid
    # The fixture tokenizer's ids are valid ids of the real vocabulary; the image range is the real config's.
    model.set_tokenizer(tokenizer)
    prompt = "A red fox standing in the snow at dawn, soft light, highly detailed"
    settings = dict(image_h=grid * 32, image_w=grid * 32, steps=args.steps, block_length=args.block_length,
                    cfg_scale=4.0, threshold=args.threshold)
    model.generate_image(prompt, **{**settings, "image_h": 256, "image_w": 256})  # warm-up
    low = model.config.image_token_offset
    high = low + model.config.image_codebook_size
    branches = [build_text_to_image_prompt(tokenizer, prompt, grid, grid),
                build_text_to_image_unconditional_prompt(tokenizer, grid, grid)]
    (result, (ids_b, nfe_b), sprint), (mem_a, mem_b, mem_s) = measure_interleaved(device, args.repeats, [
        lambda: model.generate_image(prompt, **settings),
        lambda: original_way(model, branches, grid * grid, args.block_length, args.steps, args.threshold,
                             model.config.mask_token_id, guidance=(4.0, 0.7, low, high)),
        lambda: model.generate_image(prompt, use_sprint=True, **settings),
    ])
    assert result.token_ids.tolist() == (ids_b - low).tolist(), "this engine and the original way made other codes"
    print(f"text-to-image: {grid} x {grid} grid ({grid * grid} codes), cfg 4.0 (2 branches), block "
          f"{args.block_length}, {args.steps} steps/block; (a) == (b) ids: True")
    report([("(a) this engine", mem_a.seconds, result.num_forward_passes, mem_a.peak_bytes),
            ("(b) original way (full window, full logits)", mem_b.seconds, nfe_b, mem_b.peak_bytes),
            (SPRINT_ROW, mem_s.seconds, sprint.num_forward_passes, mem_s.peak_bytes)], grid * grid)
    print("  " + agreement(sprint.token_ids.tolist(), result.token_ids.tolist()))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="128-token prompt, 64 tokens, 8 x 8 grid")
    parser.add_argument("--prompt-length", type=int, default=None)
    parser.add_argument("--gen-length", type=int, default=None)
    parser.add_argument("--grid", type=int, default=None)
    parser.add_argument("--block-length", type=int, default=32)
    parser.add_argument("--steps", type=int, default=8, help="denoising steps per block")
    parser.add_argument("--threshold", type=float, default=0.95)
    parser.add_argument("--only", choices=["text", "image"], default=None)
    parser.add_argument("--skip-diffusers", action="store_true")
    parser.add_argument("--repeats", type=int, default=1, help="rounds (each runs every way once); each way's fastest run is reported")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    args = parser.parse_args()
    args.prompt_length = args.prompt_length or (128 if args.small else 512)
    args.gen_length = args.gen_length or (64 if args.small else 256)
    args.grid = args.grid or (8 if args.small else 32)

    hf_logging.disable_progress_bar()
    device = torch.device(args.device)
    model = build_model(device, getattr(torch, args.dtype), args.block_length)
    print(f"model: hidden 512, 8 layers, 64 experts (4 per token), vocab 173568, {args.dtype} on {device} "
          f"({torch.get_num_threads()} CPU threads, experts {model.config._experts_implementation})")
    if args.only in (None, "text"):
        bench_text(model, args, device)
    if args.only in (None, "image"):
        bench_image(model, args, device)


if __name__ == "__main__":
    main()
