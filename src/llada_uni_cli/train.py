# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""`llada-uni train`: LoRA / QLoRA fine-tuning of LLaDA2.0-Uni with the masked-diffusion objective.

Run it through accelerate, in one process or data parallel over several (`accelerate launch --multi_gpu
--num_processes N`); FSDP and DeepSpeed, whose sharded states its checkpoints do not gather, are refused:

    accelerate launch -m llada_uni_cli.main train --model MODEL_DIR --data train.jsonl --output-dir out
    accelerate launch examples/train_lora.py --model MODEL_DIR --data train.jsonl --output-dir out

Data: a JSONL file, one JSON object per line (relative image paths are relative to the JSONL file):

    {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}   text SFT
    {"prompt": "Hi", "response": "Hello!"}                                                           text SFT
    {"prompt": "a red fox in the snow", "image": "fox.png"}                                         text-to-image
    {"prompt": "a red fox in the snow", "image_codes": [[3, 5, ...], ...]}                          text-to-image
    {"instruction": "make it snow", "source_image": "a.png", "edited_image": "b.png"}             editing
    {"instruction": "...", "source_codes": [[...]], "edited_codes": [[...]]}                        editing

(flat code lists take `"grid": [h, w]`, `"source_grid"`, `"edited_grid"`). The last chat message is the target; a
record without one is an error, as is a record longer than `--max-length`.

Output folder: `checkpoint-STEP/` every `--save-steps` (adapter + optimizer + scheduler + random states, all
safetensors/JSON, written to a temporary folder and renamed into place), `adapter/` at the end (a PEFT adapter:
`PeftModel.from_pretrained(base, OUT/adapter)`), and `loss.jsonl` (step, loss, learning rate). `--resume` continues
from the latest checkpoint (or a given one) with the same data order and noise.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
from pathlib import Path

import torch

from transformers_llada_uni.io_utils_llada_uni import write_directory_atomically

from .common import non_negative_int, positive_float, positive_int, probability


CHECKPOINT_PREFIX = "checkpoint-"
STATE_FILE = "trainer_state.json"
OPTIMIZER_FILE = "optimizer.safetensors"
RNG_FILE = "rng_state.safetensors"


def _noise_range(value):
    try:
        lo, hi = (float(v) for v in value.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid noise range {value!r}; expected LO,HI such as 0.3,0.8") from None
    if not 0.0 < lo <= hi <= 1.0:
        raise argparse.ArgumentTypeError(f"invalid noise range {value!r}; expected 0 < LO <= HI <= 1")
    return (lo, hi)


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    data = parser.add_argument_group("model and data")
    data.add_argument("--model", required=True, metavar="PATH", help="model folder (converted or released layout)")
    data.add_argument("--data", required=True, metavar="FILE.jsonl", help="training records (see the format above)")
    data.add_argument("--output-dir", required=True, metavar="DIR", help="checkpoints, final adapter, loss log")
    data.add_argument("--image-tokenizer", metavar="PATH", default=None,
                      help="folder with the image tokenizer, for records that give images (default: MODEL/image_tokenizer"
                           " when it exists)")
    data.add_argument("--max-length", type=positive_int, default=None, help="reject records longer than this")

    objective = parser.add_argument_group("objective")
    objective.add_argument("--block-length", type=positive_int, default=None,
                           help="block length of the block-diffusion mask (default: the model's, 32)")
    objective.add_argument("--noise-range", type=_noise_range, default=(0.3, 0.8), metavar="LO,HI")
    objective.add_argument("--per-block-noise", action="store_true", help="one noise level per block")
    objective.add_argument("--form", choices=("doubled", "one_block"), default="doubled",
                           help="doubled [noisy|clean] sequence (default) or one block per pass")
    objective.add_argument("--loss-weighting", choices=("none", "inverse_t"), default="none")
    objective.add_argument("--text-dropout", type=probability, default=0.0,
                           help="probability of replacing a caption / editing instruction with <uncondition>")
    objective.add_argument("--image-dropout", type=probability, default=0.0,
                           help="probability of dropping an editing source image (bare <|image|>)")

    lora = parser.add_argument_group("LoRA")
    lora.add_argument("--lora-r", type=positive_int, default=16)
    lora.add_argument("--lora-alpha", type=positive_float, default=32.0)
    lora.add_argument("--lora-dropout", type=probability, default=0.0)
    lora.add_argument("--target-modules", nargs="+", default=None, metavar="NAME",
                      help="module names to adapt (default: attention, dense MLP, shared experts)")
    lora.add_argument("--train-routed-experts", action="store_true", help="also adapt the routed experts")
    lora.add_argument("--load-in-4bit", action="store_true",
                      help="QLoRA: load the base model with bitsandbytes 4-bit, routed experts included")
    lora.add_argument("--gradient-checkpointing", action="store_true")

    optim = parser.add_argument_group("optimisation")
    optim.add_argument("--learning-rate", type=positive_float, default=1e-4)
    optim.add_argument("--weight-decay", type=float, default=0.0)
    optim.add_argument("--batch-size", type=positive_int, default=1, help="per device")
    optim.add_argument("--gradient-accumulation-steps", type=positive_int, default=1)
    optim.add_argument("--max-steps", type=positive_int, default=None, help="optimizer steps (overrides epochs)")
    optim.add_argument("--num-epochs", type=positive_int, default=1)
    optim.add_argument("--lr-scheduler", default="constant",
                       choices=("constant", "constant_with_warmup", "linear", "cosine"))
    optim.add_argument("--warmup-steps", type=non_negative_int, default=0)
    optim.add_argument("--max-grad-norm", type=positive_float, default=1.0)
    optim.add_argument("--mixed-precision", choices=("no", "bf16", "fp16"), default="no")
    optim.add_argument("--dtype", choices=("float32", "bfloat16"), default=None,
                       help="dtype of the base weights (default: bfloat16 on GPU, float32 on CPU)")
    optim.add_argument("--seed", type=non_negative_int, default=0)

    run = parser.add_argument_group("checkpoints and logging")
    run.add_argument("--save-steps", type=positive_int, default=500)
    run.add_argument("--save-total-limit", type=positive_int, default=None, help="keep only the newest N checkpoints")
    run.add_argument("--resume", nargs="?", const="latest", default=None, metavar="CHECKPOINT",
                     help="resume from the latest checkpoint in --output-dir, or from the given one")
    run.add_argument("--logging-steps", type=positive_int, default=1)
    run.add_argument("--no-progress-bar", action="store_true")
    return parser


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "train",
        help="LoRA / QLoRA fine-tuning (text, text-to-image, editing) with the masked-diffusion objective",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="train_lora", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    return add_arguments(parser)


# --------------------------------------------------------------------------------------------------------------------
# Checkpoints: safetensors + JSON, written atomically
# --------------------------------------------------------------------------------------------------------------------


def _optimizer_to_safetensors(optimizer) -> tuple[dict, dict]:
    """Splits an optimizer state dict into tensors (for safetensors) and a JSON-able skeleton."""
    state = optimizer.state_dict()
    tensors, skeleton = {}, {}
    for param_id, param_state in state["state"].items():
        entry = {}
        for key, value in param_state.items():
            if isinstance(value, torch.Tensor):
                name = f"state.{param_id}.{key}"
                tensors[name] = value.detach().contiguous().cpu()
                entry[key] = {"tensor": name}
            else:
                entry[key] = value
        skeleton[str(param_id)] = entry
    return tensors, {"state": skeleton, "param_groups": state["param_groups"]}


def _optimizer_from_safetensors(tensors: dict, meta: dict) -> dict:
    state = {}
    for param_id, entry in meta["state"].items():
        state[int(param_id)] = {
            key: tensors[value["tensor"]] if isinstance(value, dict) and "tensor" in value else value
            for key, value in entry.items()
        }
    return {"state": state, "param_groups": meta["param_groups"]}


def _rng_tensors(collator_generator) -> dict:
    tensors = {"torch": torch.get_rng_state(), "collator": collator_generator.get_state()}
    if torch.cuda.is_available():
        for i, cuda_state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda.{i}"] = cuda_state
    return tensors


def list_checkpoints(output_dir: Path) -> list[Path]:
    found = []
    for path in Path(output_dir).glob(f"{CHECKPOINT_PREFIX}*"):
        suffix = path.name[len(CHECKPOINT_PREFIX) :]
        if path.is_dir() and suffix.isdigit() and (path / STATE_FILE).is_file():
            found.append(path)
    return sorted(found, key=lambda p: int(p.name[len(CHECKPOINT_PREFIX) :]))


# --------------------------------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------------------------------


class _EpochSampler(torch.utils.data.Sampler):
    """Shuffles with a generator re-seeded per epoch, so a resumed run sees the same order."""

    def __init__(self, size: int, seed: int):
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int):
        self.epoch = epoch

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(self.size, generator=generator).tolist())

    def __len__(self):
        return self.size


def _load_image_tokenizer(model_dir: Path, image_tokenizer_dir):
    """The SigLIP-VQ image tokenizer and the processor that prepares pictures for it (records that give pictures)."""
    from transformers_llada_uni import LLaDAUniImageVQModel, LLaDAUniProcessor

    path = Path(image_tokenizer_dir) if image_tokenizer_dir else model_dir / "image_tokenizer"
    if not path.is_dir():
        raise ValueError(
            f"The data gives pictures but there is no image tokenizer at {str(path)!r}; pass --image-tokenizer or give "
            "precomputed codes."
        )
    return LLaDAUniImageVQModel.from_pretrained(path).eval(), LLaDAUniProcessor.from_pretrained(model_dir)


def _needs_images(records) -> bool:
    return any(("image" in r or "source_image" in r or "edited_image" in r) for r in records)


def train(args) -> dict:
    """Runs the training loop described in the module docstring; returns a summary (steps, losses, paths)."""
    from accelerate import Accelerator
    from accelerate.utils import DistributedType, set_seed
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file, save_file
    from tqdm.auto import tqdm
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig, get_scheduler

    import transformers_llada_uni  # noqa: F401  (Auto registration)
    from transformers_llada_uni.training_llada_uni import (
        DataCollatorForMaskedDiffusion,
        LLaDAUniTrainingDataEncoder,
        MaskedDiffusionConfig,
        MaskedDiffusionDataset,
        get_llada_uni_peft_model,
        load_jsonl_records,
        load_llada_uni_4bit,
        masked_diffusion_loss,
    )

    output_dir = Path(args.output_dir)
    model_dir = Path(args.model)
    if not model_dir.is_dir():
        raise ValueError(f"--model {str(model_dir)!r} is not a folder.")
    if not Path(args.data).is_file():
        raise ValueError(f"--data {args.data!r} is not a file.")

    accelerator = Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps, mixed_precision=args.mixed_precision
    )
    sharded = {DistributedType.FSDP, DistributedType.DEEPSPEED}
    if accelerator.distributed_type in sharded:
        # The checkpoints hold the main process's adapter and optimizer state as they are (safetensors, no pickle):
        # right for data parallel, silently partial for sharded parameters or optimizer states.
        raise ValueError(
            f"This entry point does not support {accelerator.distributed_type.value} (sharded states); launch data "
            "parallel instead (`accelerate launch --multi_gpu --num_processes N`), with `--load-in-4bit` where the "
            "model does not fit one device."
        )
    set_seed(args.seed)
    on_gpu = accelerator.device.type == "cuda"
    dtype = getattr(torch, args.dtype) if args.dtype else (torch.bfloat16 if on_gpu else torch.float32)

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if args.load_in_4bit:
        quantization_config = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype
        )
        model = load_llada_uni_4bit(model_dir, quantization_config, dtype=dtype, device_map={"": accelerator.device})
    else:
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype)

    records = load_jsonl_records(args.data)
    image_tokenizer = processor = None
    if _needs_images(records):
        image_tokenizer, processor = _load_image_tokenizer(model_dir, args.image_tokenizer)
    encoder = LLaDAUniTrainingDataEncoder(tokenizer, model.config, image_tokenizer=image_tokenizer,
                                          processor=processor, max_length=args.max_length)
    dataset = MaskedDiffusionDataset(records, encoder, source=str(args.data))

    objective = MaskedDiffusionConfig(
        block_length=args.block_length,
        noise_range=tuple(args.noise_range),
        per_block_noise=args.per_block_noise,
        form=args.form,
        loss_weighting=args.loss_weighting,
        text_dropout=args.text_dropout,
        image_dropout=args.image_dropout,
        max_length=args.max_length,
    )
    # Each process noises its own batches differently.
    collator = DataCollatorForMaskedDiffusion(
        encoder.special, objective, model_config=model.config, seed=args.seed * 1000 + accelerator.process_index
    )
    objective.block_length = collator.block_length

    model = get_llada_uni_peft_model(
        model,
        r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        target_modules=args.target_modules,
        train_routed_experts=args.train_routed_experts,
        use_gradient_checkpointing=args.gradient_checkpointing,
    )
    sampler = _EpochSampler(len(dataset), args.seed)
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, sampler=sampler, collate_fn=collator)

    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=args.learning_rate, weight_decay=args.weight_decay)
    updates_per_epoch = max(1, math.ceil(len(loader) / args.gradient_accumulation_steps))
    max_steps = args.max_steps or updates_per_epoch * args.num_epochs
    # accelerate steps a prepared scheduler once per process for every optimizer step.
    scheduler = get_scheduler(args.lr_scheduler, optimizer,
                              num_warmup_steps=args.warmup_steps * accelerator.num_processes,
                              num_training_steps=max_steps * accelerator.num_processes)
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)

    step, epoch, batches_done = 0, 0, 0
    if args.resume:
        checkpoint = _resolve_resume(args.resume, output_dir)
        state = json.loads((checkpoint / STATE_FILE).read_text())
        peft_model = accelerator.unwrap_model(model)
        adapter = load_file(str(checkpoint / "adapter_model.safetensors"))
        result = set_peft_model_state_dict(peft_model, adapter)
        if getattr(result, "unexpected_keys", None):
            raise ValueError(f"{checkpoint} does not fit this model: unexpected keys {result.unexpected_keys[:3]}.")
        optimizer.load_state_dict(
            _optimizer_from_safetensors(load_file(str(checkpoint / OPTIMIZER_FILE)), state["optimizer"])
        )
        scheduler.load_state_dict(state["scheduler"])
        rng = load_file(str(checkpoint / RNG_FILE))
        torch.set_rng_state(rng["torch"])
        collator.generator.set_state(rng["collator"])
        if torch.cuda.is_available():
            for i in range(torch.cuda.device_count()):
                if f"cuda.{i}" in rng:
                    torch.cuda.set_rng_state(rng[f"cuda.{i}"], i)
        step, epoch, batches_done = state["step"], state["epoch"], state["batches_done"]
        # the gradient-accumulation phase continues where it stopped
        accelerator.step = state.get("accumulation_step", 0)
        if state.get("world_size", 1) != accelerator.num_processes:
            raise ValueError(
                f"{checkpoint} was written by {state.get('world_size')} processes, this run has "
                f"{accelerator.num_processes}; resume with the same number of processes."
            )
        accelerator.print(f"Resuming from {checkpoint} at step {step}.")

    loss_log = output_dir / "loss.jsonl"
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        if not args.resume and loss_log.exists():
            loss_log.unlink()

    def save_checkpoint():
        if not accelerator.is_main_process:
            return
        peft_model = accelerator.unwrap_model(model)
        tensors, optimizer_meta = _optimizer_to_safetensors(optimizer)
        state = {
            "step": step,
            "epoch": epoch,
            "batches_done": batches_done,
            "accumulation_step": accelerator.step,
            "world_size": accelerator.num_processes,
            "optimizer": optimizer_meta,
            "scheduler": scheduler.state_dict(),
            "args": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(args).items()
                     if isinstance(v, (str, int, float, bool, list, tuple, type(None)))},
        }

        def write(tmp: Path):
            peft_model.save_pretrained(tmp, safe_serialization=True)
            save_file(tensors, str(tmp / OPTIMIZER_FILE))
            save_file({k: v.contiguous() for k, v in _rng_tensors(collator.generator).items()},
                      str(tmp / RNG_FILE))
            (tmp / STATE_FILE).write_text(json.dumps(state, indent=1))

        write_directory_atomically(output_dir / f"{CHECKPOINT_PREFIX}{step}", write)
        if args.save_total_limit:
            for old in list_checkpoints(output_dir)[: -args.save_total_limit]:
                shutil.rmtree(old, ignore_errors=True)

    model.train()
    losses = []
    progress = tqdm(total=max_steps, initial=step, desc="train", unit="step",
                    disable=args.no_progress_bar or not accelerator.is_local_main_process, file=sys.stderr)
    running = []
    while step < max_steps:
        batches = accelerator.skip_first_batches(loader, batches_done) if batches_done else loader
        # through the loader: accelerate re-seeds the sampler with its own epoch counter on every iteration
        for epoch_aware in (loader, batches):
            if hasattr(epoch_aware, "set_epoch"):
                epoch_aware.set_epoch(epoch)
        sampler.set_epoch(epoch)
        for batch in batches:
            batch = {k: v.to(accelerator.device) for k, v in batch.items()}
            with accelerator.accumulate(model):
                with accelerator.autocast():
                    loss = masked_diffusion_loss(model, batch, objective).loss
                accelerator.backward(loss)
                if accelerator.sync_gradients and args.max_grad_norm:
                    accelerator.clip_grad_norm_(trainable, args.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            batches_done += 1
            running.append(loss.detach().float())
            if accelerator.sync_gradients:
                step += 1
                mean_loss = accelerator.gather(torch.stack(running).mean()[None]).mean().item()
                running = []
                losses.append(mean_loss)
                lr = scheduler.get_last_lr()[0]
                progress.update(1)
                progress.set_postfix(loss=f"{mean_loss:.4f}", lr=f"{lr:.2e}")
                if accelerator.is_main_process and step % args.logging_steps == 0:
                    with open(loss_log, "a", encoding="utf-8") as handle:
                        handle.write(json.dumps({"step": step, "loss": mean_loss, "lr": lr}) + "\n")
                if step % args.save_steps == 0 or step == max_steps:
                    save_checkpoint()
                if step >= max_steps:
                    break
        else:
            epoch += 1
            batches_done = 0
            continue
        break
    progress.close()

    accelerator.wait_for_everyone()
    adapter_dir = output_dir / "adapter"
    if accelerator.is_main_process:
        peft_model = accelerator.unwrap_model(model)
        write_directory_atomically(adapter_dir, lambda tmp: peft_model.save_pretrained(tmp, safe_serialization=True))
    accelerator.end_training()
    return {"steps": step, "losses": losses, "adapter_dir": str(adapter_dir), "output_dir": str(output_dir),
            "model": accelerator.unwrap_model(model), "is_main_process": accelerator.is_main_process}


def _resolve_resume(value: str, output_dir: Path) -> Path:
    if value == "latest":
        found = list_checkpoints(output_dir)
        if not found:
            raise ValueError(f"--resume: no {CHECKPOINT_PREFIX}N folder with {STATE_FILE} in {str(output_dir)!r}.")
        return found[-1]
    path = Path(value)
    if not (path / STATE_FILE).is_file():
        raise ValueError(f"--resume {value!r} is not a checkpoint folder (it has no {STATE_FILE}).")
    return path


def run(args) -> int:
    summary = train(args)
    if summary["is_main_process"]:
        print(f"Trained {summary['steps']} steps; adapter saved to {summary['adapter_dir']}.")
    return 0


def main(argv=None) -> int:
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
