# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""Memory of loading a mid-size random LLaDA2.0-Uni backbone in bf16 vs 4-bit (QLoRA).

Builds a random model with the released layout (real vocabulary and image range, fewer/narrower layers and experts),
saves it in bf16 (per-expert keys, like the release), then loads it in a fresh process each way:

- `bf16`: `from_pretrained(dtype=bfloat16)`;
- `bnb4_plain`: `from_pretrained(quantization_config=BitsAndBytesConfig(load_in_4bit=True))`: transformers quantizes the
  2-D linears only, the fused 3-D routed experts stay in bf16;
- `bnb4_llada`: `load_llada_uni_4bit(...)`: the routed experts are quantized too, while loading;
- `bnb4_llada_lora`: the same plus the default LoRA adapters (r=16), one training step on a short sequence.

Each mode runs with `MALLOC_MMAP_THRESHOLD_=65536` (override with `--malloc-mmap-threshold`, 0 = glibc default): on
the CPU, bitsandbytes quantizes thousands of expert matrices through small temporaries, and glibc keeps the freed heap,
so without it the peak RSS of the 4-bit load measures the allocator (it drops by `malloc_trim`), not the model.

Reports per mode: the model's weight bytes (`get_memory_footprint`), the bytes of routed-expert weights, the peak
resident memory of the process (`ru_maxrss`, which includes the Python/torch runtime; the `baseline` row is that
runtime alone) and, on CUDA, the peak allocated GPU memory.

    python benchmarks/bench_qlora_memory.py [--hidden 1024 --layers 6 --experts 64 ...] [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time


def build_checkpoint(path, args):
    import torch

    import transformers_llada_uni  # noqa: F401
    from transformers_llada_uni import LLaDAUniConfig, LLaDAUniForConditionalGeneration

    config = LLaDAUniConfig(
        hidden_size=args.hidden,
        intermediate_size=args.dense_intermediate,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        num_key_value_heads=args.kv_heads,
        head_dim=args.hidden // args.heads,
        num_experts=args.experts,
        num_experts_per_tok=args.experts_per_token,
        n_group=args.groups,
        topk_group=args.top_groups,
        moe_intermediate_size=args.expert_intermediate,
    )
    torch.manual_seed(0)
    model = LLaDAUniForConditionalGeneration(config).to(torch.bfloat16)
    model.save_pretrained(path)
    return sum(p.numel() for p in model.parameters())


def _rss_bytes():
    # VmHWM starts afresh with the new address space of exec; ru_maxrss would inherit the parent's peak on Linux.
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak * (1 if sys.platform == "darwin" else 1024)


def measure(path, mode, device):
    import torch

    import transformers_llada_uni  # noqa: F401
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    from transformers_llada_uni.training_peft_llada_uni import (
        LLaDAUniExperts4bit,
        get_llada_uni_peft_model,
        load_llada_uni_4bit,
    )

    result = {"mode": mode}
    if mode == "baseline":
        result["peak_rss_bytes"] = _rss_bytes()
        return result
    start = time.perf_counter()
    compute = torch.bfloat16
    bnb = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=compute,
                             bnb_4bit_use_double_quant=True)
    if mode == "bf16":
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16, device_map=device)
    elif mode == "bnb4_plain":
        model = AutoModelForCausalLM.from_pretrained(path, dtype=compute, quantization_config=bnb, device_map=device)
    else:
        model = load_llada_uni_4bit(path, bnb, dtype=compute, device_map=device)
    result["load_seconds"] = round(time.perf_counter() - start, 2)
    result["weight_bytes"] = model.get_memory_footprint()
    expert_bytes = 0
    for module in model.modules():
        if isinstance(module, LLaDAUniExperts4bit) or type(module).__name__ == "LLaDAUniExperts":
            expert_bytes += sum(p.numel() * p.element_size() for p in module.parameters())
            expert_bytes += sum(
                sum(t.numel() * t.element_size() for t in _quant_state_tensors(p)) for p in module.parameters()
            )
    result["routed_expert_bytes"] = expert_bytes
    if mode == "bnb4_llada_lora":
        peft_model = get_llada_uni_peft_model(model, r=16)
        ids = torch.randint(0, model.config.image_token_offset, (1, 64), device=model.device)
        peft_model.train()
        loss = peft_model(input_ids=ids).logits[:, -8:].float().logsumexp(-1).mean()
        loss.backward()
        result["lora_trainable_params"] = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    result["peak_rss_bytes"] = _rss_bytes()
    if torch.cuda.is_available() and device != "cpu":
        result["peak_cuda_bytes"] = torch.cuda.max_memory_allocated()
    return result


def _quant_state_tensors(param):
    state = getattr(param, "quant_state", None)
    if state is None:
        return []
    tensors = [state.absmax, state.code]
    if getattr(state, "state2", None) is not None:
        tensors += [state.state2.absmax, state.state2.code]
    return [t for t in tensors if t is not None]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--kv-heads", type=int, default=2)
    parser.add_argument("--experts", type=int, default=128)
    parser.add_argument("--experts-per-token", type=int, default=8)
    parser.add_argument("--groups", type=int, default=8)
    parser.add_argument("--top-groups", type=int, default=4)
    parser.add_argument("--expert-intermediate", type=int, default=512)
    parser.add_argument("--dense-intermediate", type=int, default=2816)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--malloc-mmap-threshold", type=int, default=65536)
    parser.add_argument("--modes", nargs="+", default=["baseline", "bf16", "bnb4_plain", "bnb4_llada", "bnb4_llada_lora"])
    parser.add_argument("--output", default=None, help="write the results as JSON here")
    parser.add_argument("--_measure", nargs=2, metavar=("PATH", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args._measure:
        print(json.dumps(measure(args._measure[0], args._measure[1], args.device)))
        return 0

    with tempfile.TemporaryDirectory(prefix="llada-uni-qlora-bench-") as path:
        parameters = build_checkpoint(path, args)
        rows = []
        env = dict(os.environ, TOKENIZERS_PARALLELISM="false")
        if args.malloc_mmap_threshold:
            env["MALLOC_MMAP_THRESHOLD_"] = str(args.malloc_mmap_threshold)
        for mode in args.modes:
            # a fresh process per mode: peak RSS is per process and allocators do not give memory back
            out = subprocess.run(
                [sys.executable, __file__, "--_measure", path, mode, "--device", args.device],
                capture_output=True, text=True, check=False, env=env,
            )
            if out.returncode != 0:
                raise RuntimeError(f"mode {mode} failed:\n{out.stderr[-3000:]}")
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    summary = {"parameters": parameters, "config": {k: v for k, v in vars(args).items() if not k.startswith("_")},
               "results": rows}
    gib = 1024**3
    print(f"random backbone, {parameters / 1e9:.2f} B parameters, device {args.device}")
    print(f"{'mode':18s} {'weights GiB':>11s} {'experts GiB':>11s} {'peak RSS GiB':>12s} {'peak CUDA GiB':>13s} {'load s':>7s}")
    for row in rows:
        def fmt(key, width):
            value = row.get(key)
            return f"{value / gib:{width}.3f}" if isinstance(value, (int, float)) else " " * (width - 1) + "-"

        print(f"{row['mode']:18s} {fmt('weight_bytes', 11)} {fmt('routed_expert_bytes', 11)} "
              f"{fmt('peak_rss_bytes', 12)} {fmt('peak_cuda_bytes', 13)} {row.get('load_seconds', '-'):>7}")
    if args.output:
        with open(args.output, "w") as handle:
            json.dump(summary, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
