# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""Training throughput and memory of LLaDAUniMaskedDiffusionTrainer: LoRA, QLoRA (routed experts in 4 bits) and full
fine-tuning, in one process and in two (data parallel, FSDP2), on a mid-size random backbone.

Builds a random model (the released layout at a smaller size), saves it, then runs each setup in fresh processes
(`torch.distributed.run` for two): `--warmup` steps, then `--steps` timed steps of the masked-diffusion objective
(doubled sequence, BD3-LM mask) on fixed-length synthetic rows (`--prompt-length` prompt + `--target-length` target
tokens). Each row of the table gives

- tokens/s: sequence tokens (prompt + target, all processes) per second of the timed steps, and that number per
  process; `x 1 proc`: the ratio to the one-process run of the same method (same batch per process, so two processes
  ideally give 2.0);
- peak memory per process: resident memory (`VmHWM`, includes the Python / torch runtime) on the CPU, allocated
  memory on a GPU; the largest of the processes.

    python benchmarks/bench_train.py                         # CPU (gloo), float32
    python benchmarks/bench_train.py --device cuda --dtype bfloat16 --processes 1    # one GPU

On the CPU each process gets `--threads` threads (1): two processes use two cores where one uses one, so `x 1 proc`
shows how each engine scales, its communication included. QLoRA runs in one process and data parallel (FSDP does not
shard bitsandbytes' 4-bit weights here).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time


SETUPS = (
    ("lora", 1, "single"), ("lora", 2, "ddp"), ("lora", 2, "fsdp"),
    ("qlora", 1, "single"), ("qlora", 2, "ddp"),
    ("full", 1, "single"), ("full", 2, "ddp"), ("full", 2, "fsdp"),
)
FSDP_CONFIG = {"version": 2, "transformer_layer_cls_to_wrap": ["LLaDAUniDecoderLayer"], "reshard_after_forward": True,
               "state_dict_type": "FULL_STATE_DICT"}


def build_checkpoint(path: str, args) -> int:
    import torch

    from transformers_llada_uni import LLaDAUniConfig, LLaDAUniForConditionalGeneration

    config = LLaDAUniConfig(
        vocab_size=args.vocab, image_token_offset=args.vocab - args.codebook, image_codebook_size=args.codebook,
        mask_token_id=args.vocab - args.codebook - 1, pad_token_id=0, eos_token_id=1, hidden_size=args.hidden,
        intermediate_size=args.dense_intermediate, num_hidden_layers=args.layers, num_attention_heads=args.heads,
        num_key_value_heads=args.kv_heads, head_dim=args.hidden // args.heads, num_experts=args.experts,
        num_experts_per_tok=args.experts_per_token, n_group=args.groups, topk_group=args.top_groups,
        moe_intermediate_size=args.expert_intermediate,
    )
    torch.manual_seed(0)
    model = LLaDAUniForConditionalGeneration(config)
    model.save_pretrained(path)
    return sum(p.numel() for p in model.parameters())


def _peak_rss() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def worker(path: str, method: str, engine: str, args) -> None:
    """One process of a setup: trains and writes its figures to `args.result_dir/rank-N.json`."""
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig, TrainerCallback, TrainingArguments, set_seed

    from transformers_llada_uni import (
        DataCollatorForMaskedDiffusion,
        LLaDAUniMaskedDiffusionTrainer,
        MaskedDiffusionConfig,
        get_llada_uni_peft_model,
        load_llada_uni_4bit,
        prepare_llada_uni_full_finetuning,
    )
    from transformers_llada_uni.prompting_llada_uni import LLaDAUniSpecialTokenIds
    from transformers_llada_uni.training_data_llada_uni import MaskedDiffusionExample

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    set_seed(0)
    dtype = getattr(torch, args.dtype)
    on_gpu = args.device != "cpu"
    settings = dict(
        output_dir=os.path.join(args.result_dir, "out"), max_steps=args.warmup + args.steps,
        per_device_train_batch_size=args.batch, learning_rate=1e-4, save_strategy="no", report_to=[],
        disable_tqdm=True, logging_strategy="no", use_cpu=not on_gpu, bf16=on_gpu and args.dtype == "bfloat16",
    )
    if engine == "fsdp":
        settings.update(fsdp=True, fsdp_config=dict(FSDP_CONFIG))
    training_args = TrainingArguments(**settings)
    if method == "qlora":
        quantization = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype)
        model = load_llada_uni_4bit(path, quantization, dtype=dtype, device_map={"": training_args.device})
    else:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    if method == "full":
        prepare_llada_uni_full_finetuning(model)
    else:
        model = get_llada_uni_peft_model(model, r=16, train_routed_experts=True)

    config = model.config
    # No tokenizer for a random model: the collator needs the mask, EOS and image range only (the image marker ids
    # are unused in training batches).
    special = LLaDAUniSpecialTokenIds(
        mask_token_id=config.mask_token_id, eos_token_id=config.eos_token_id, image_token_id=2, end_image_token_id=3,
        boi_token_id=4, image_token_offset=config.image_token_offset, image_codebook_size=config.image_codebook_size,
    )
    generator = torch.Generator().manual_seed(1)
    rows = []
    for index in range(args.batch * world * (args.warmup + args.steps)):
        prompt = torch.randint(5, config.image_token_offset - 1, (args.prompt_length,), generator=generator)
        target = torch.randint(5, config.image_token_offset - 1, (args.target_length,), generator=generator)
        rows.append(MaskedDiffusionExample(prompt.tolist(), target.tolist(), pad_with_eos=False, index=index).to_features())
    import datasets

    dataset = datasets.Dataset.from_list(rows)
    collator = DataCollatorForMaskedDiffusion(special, MaskedDiffusionConfig(block_length=32), model_config=config)

    class Clock(TrainerCallback):
        def __init__(self):
            self.start = None

        def on_step_end(self, args_, state, control, **kwargs):
            if on_gpu:
                torch.cuda.synchronize()
            if state.global_step == args.warmup:
                self.start = time.perf_counter()
                if on_gpu:
                    torch.cuda.reset_peak_memory_stats()

    clock = Clock()
    trainer = LLaDAUniMaskedDiffusionTrainer(model=model, args=training_args, train_dataset=dataset,
                                             data_collator=collator, overwrite_output_dir=True, callbacks=[clock])
    trainer.train()
    elapsed = time.perf_counter() - clock.start
    tokens = args.steps * args.batch * (args.prompt_length + args.target_length)
    result = {
        "tokens": tokens, "seconds": elapsed, "peak_rss_bytes": _peak_rss(),
        "peak_cuda_bytes": torch.cuda.max_memory_allocated() if on_gpu else None,
        "trainable_parameters": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
    }
    with open(os.path.join(args.result_dir, f"rank-{training_args.process_index}.json"), "w") as handle:
        json.dump(result, handle)


def run_setup(path: str, method: str, processes: int, engine: str, args) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-train-") as result_dir:
        options = [a for a in sys.argv[1:] if not a.startswith("--_")]
        inner = [__file__, "--_worker", path, method, engine, "--result-dir", result_dir, *options]
        if processes == 1:
            command = [sys.executable, *inner]
        else:
            command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                       str(processes), *inner]
        env = dict(os.environ, TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS=str(args.threads))
        out = subprocess.run(command, capture_output=True, text=True, env=env)
        if out.returncode != 0:
            return {"error": (out.stderr.strip().splitlines() or ["?"])[-1][:160]}
        ranks = [json.load(open(os.path.join(result_dir, f"rank-{r}.json"))) for r in range(processes)]
    seconds = max(r["seconds"] for r in ranks)
    return {
        "tokens_per_second": sum(r["tokens"] for r in ranks) / seconds,
        "peak_rss_bytes": max(r["peak_rss_bytes"] for r in ranks),
        "peak_cuda_bytes": max(r["peak_cuda_bytes"] or 0 for r in ranks) or None,
        "trainable_parameters": ranks[0]["trainable_parameters"],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--kv-heads", type=int, default=2)
    parser.add_argument("--experts", type=int, default=32)
    parser.add_argument("--experts-per-token", type=int, default=4)
    parser.add_argument("--groups", type=int, default=4)
    parser.add_argument("--top-groups", type=int, default=2)
    parser.add_argument("--expert-intermediate", type=int, default=256)
    parser.add_argument("--dense-intermediate", type=int, default=1408)
    parser.add_argument("--vocab", type=int, default=32768, help="text + image vocabulary (default: 32768)")
    parser.add_argument("--codebook", type=int, default=8192, help="image codes at the end of the vocabulary")
    parser.add_argument("--prompt-length", type=int, default=64)
    parser.add_argument("--target-length", type=int, default=192)
    parser.add_argument("--batch", type=int, default=2, help="rows per process and step")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads per process (default 1: two processes use two cores, one process one)")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument("--methods", nargs="+", default=["lora", "qlora", "full"])
    parser.add_argument("--processes", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--output", default=None, help="write the results as JSON here")
    parser.add_argument("--result-dir", help=argparse.SUPPRESS)
    parser.add_argument("--_worker", nargs=3, metavar=("PATH", "METHOD", "ENGINE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args._worker:
        worker(*args._worker, args)
        return 0

    with tempfile.TemporaryDirectory(prefix="llada-uni-bench-train-") as path:
        parameters = build_checkpoint(path, args)
        rows = []
        for method, processes, engine in SETUPS:
            if method not in args.methods or processes not in args.processes:
                continue
            print(f"... {method} {engine} x{processes}", file=sys.stderr, flush=True)
            rows.append({"method": method, "processes": processes, "engine": engine,
                         **run_setup(path, method, processes, engine, args)})
    gib = 1024**3
    print(f"random backbone, {parameters / 1e6:.0f} M parameters, {args.layers} layers, hidden {args.hidden}, "
          f"{args.experts} experts (top {args.experts_per_token}); device {args.device}, {args.dtype}; "
          f"{args.batch} rows x {args.prompt_length + args.target_length} tokens per process and step")
    print(f"{'method':7s} {'engine':7s} {'procs':>5s} {'trainable':>10s} {'tokens/s':>9s} {'per proc':>9s} "
          f"{'x 1 proc':>8s} {'peak RSS GiB/proc':>17s} {'peak CUDA GiB/proc':>18s}")
    single = {r["method"]: r.get("tokens_per_second") for r in rows if r["processes"] == 1}
    for row in rows:
        if "error" in row:
            print(f"{row['method']:7s} {row['engine']:7s} {row['processes']:5d}  failed: {row['error']}")
            continue
        tps = row["tokens_per_second"]
        ratio = f"{tps / single[row['method']]:8.2f}" if single.get(row["method"]) else " " * 7 + "-"
        cuda = f"{row['peak_cuda_bytes'] / gib:18.2f}" if row["peak_cuda_bytes"] else " " * 17 + "-"
        print(f"{row['method']:7s} {row['engine']:7s} {row['processes']:5d} {row['trainable_parameters'] / 1e6:9.1f}M "
              f"{tps:9.0f} {tps / row['processes']:9.0f} {ratio} {row['peak_rss_bytes'] / gib:17.2f} {cuda}")
    if args.output:
        with open(args.output, "w") as handle:
            json.dump({"parameters": parameters, "config": {k: v for k, v in vars(args).items() if not k.startswith("_")},
                       "results": rows}, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
