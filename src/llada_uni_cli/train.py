# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""`llada-uni train`: fine-tuning of LLaDA2.0-Uni with the masked-diffusion objective (LoRA, QLoRA or full).

It builds transformers `TrainingArguments` from its options and runs `LLaDAUniMaskedDiffusionTrainer` (a
`transformers.Trainer`). Any `TrainingArguments` field can be set with `--training-arg NAME=VALUE` (repeatable; it
overrides the options below). One process, or several through accelerate / torchrun, data parallel, FSDP2 or
DeepSpeed ZeRO, configured the accelerate way (ready configs in `examples/accelerate/`):

    llada-uni train --model MODEL_DIR --data train.jsonl --output-dir out
    accelerate launch --config_file examples/accelerate/fsdp2.yaml -m llada_uni_cli.main train --model MODEL_DIR ...

Data: a JSON-lines / JSON / parquet / CSV file, a `Dataset.save_to_disk` folder or a data set name (read with
`datasets`); text, text-to-image and editing rows mix in one set (relative picture paths are read from the file's
folder). The columns of a row:

    {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}   text SFT
    {"prompt": "Hi", "response": "Hello!"}                                                           text SFT
    {"prompt": "a red fox in the snow", "image": "fox.png"}                                         text-to-image
    {"prompt": "a red fox in the snow", "image_codes": [[3, 5, ...], ...]}                          text-to-image
    {"instruction": "make it snow", "source_image": "a.png", "edited_image": "b.png"}             editing
    {"instruction": "...", "source_codes": [[...]], "edited_codes": [[...]]}                        editing

(flat code lists take `"grid": [h, w]`, `"source_grid"`, `"edited_grid"`). A bad row is an error naming its line or
row and its column.

Output folder: `checkpoint-STEP/` every `--save-steps` (safetensors and JSON, no pickle), `adapter/` (LoRA: load with
`PeftModel.from_pretrained(base, OUT/adapter)`) or `model/` (full fine-tuning: `from_pretrained(OUT/model)`) at the
end, and `loss.jsonl` (one line per logged step). A folder that holds an earlier run is refused unless `--resume`
(continue it: same losses as an uninterrupted run) or `--overwrite` (delete it) is given.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import importlib.util
import json
import os
import shutil
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from transformers import TrainingArguments

from .common import _device, existing_dir, non_negative_int, positive_float, positive_int, probability


FINAL_ADAPTER = "adapter"
FINAL_MODEL = "model"
LOSS_LOG = "loss.jsonl"
_DTYPES = ("auto", "float32", "bfloat16", "float16")


def _noise_range(value):
    try:
        lo, hi = (float(v) for v in value.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid noise range {value!r}; expected LO,HI such as 0.3,0.8") from None
    if not 0.0 < lo <= hi <= 1.0:
        raise argparse.ArgumentTypeError(f"invalid noise range {value!r}; expected 0 < LO <= HI <= 1")
    return (lo, hi)


def _training_arg(value):
    name, sep, setting = value.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"invalid --training-arg {value!r}; expected NAME=VALUE, e.g. optim=adamw_torch_fused")
    return name.strip(), setting


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    data = parser.add_argument_group("model and data")
    data.add_argument("--model", required=True, metavar="PATH", type=existing_dir,
                      help="the base model folder (converted or released layout)")
    data.add_argument("--data", required=True, metavar="PATH",
                      help="training records: a .jsonl/.json/.parquet/.csv file, a save_to_disk folder or a data set "
                           "name (see the formats above)")
    data.add_argument("--data-split", default="train", metavar="NAME", help="split of --data to train on (default: train)")
    data.add_argument("--eval-data", default=None, metavar="PATH",
                      help="evaluation records in the same formats; evaluated every --eval-steps (eval_loss)")
    data.add_argument("--eval-split", default="train", metavar="NAME", help="split of --eval-data (default: train)")
    data.add_argument("--streaming", action="store_true",
                      help="read --data as a streamed IterableDataset, encoded while training (needs --max-steps)")
    data.add_argument("--output-dir", required=True, metavar="DIR", help="checkpoints, the final adapter or model, loss log")
    data.add_argument("--image-tokenizer", metavar="PATH", default=None,
                      help="image tokenizer folder for rows that give pictures (default: MODEL/image_tokenizer)")
    data.add_argument("--max-length", type=positive_int, default=None,
                      help="refuse records longer than this many tokens (default: no limit)")

    objective = parser.add_argument_group("objective")
    objective.add_argument("--block-length", type=positive_int, default=None,
                           help="block length of the block-diffusion mask (default: the model's, 32)")
    objective.add_argument("--noise-range", type=_noise_range, default=(0.3, 0.8), metavar="LO,HI",
                           help="uniform range of the per-sequence noise level t (default: 0.3,0.8)")
    objective.add_argument("--per-block-noise", action="store_true", help="draw one noise level per block")
    objective.add_argument("--form", choices=("doubled", "one_block"), default="doubled",
                           help="doubled [noisy|clean] sequence under the BD3-LM mask (default) or one block per pass")
    objective.add_argument("--loss-weighting", choices=("none", "inverse_t"), default="none",
                           help="none: mean over masked tokens (public recipe, default); inverse_t: original LLaDA 1/t")
    objective.add_argument("--text-dropout", type=probability, default=0.0,
                           help="probability of replacing a caption / editing instruction with <uncondition> "
                                "(default: 0)")
    objective.add_argument("--image-dropout", type=probability, default=0.0,
                           help="probability of dropping an editing source image (bare <|image|>) (default: 0)")
    objective.add_argument("--pad-to-multiple-of", type=positive_int, default=None,
                           help="round each batch's length up to a multiple of this (text is padded with EOS)")

    method = parser.add_argument_group("what to train")
    method.add_argument("--full-finetuning", action="store_true",
                        help="train every weight except the MoE router (frozen with its expert_bias) instead of LoRA")
    method.add_argument("--lora-r", type=positive_int, default=16, help="LoRA rank (default: 16)")
    method.add_argument("--lora-alpha", type=positive_float, default=32.0, help="LoRA alpha (default: 32)")
    method.add_argument("--lora-dropout", type=probability, default=0.0, help="LoRA dropout (default: 0)")
    method.add_argument("--target-modules", nargs="+", default=None, metavar="NAME",
                        help="module names to adapt (default: attention, dense MLP, shared experts)")
    method.add_argument("--train-routed-experts", action="store_true", help="also adapt the routed experts (LoRA)")
    method.add_argument("--load-in-4bit", action="store_true",
                        help="QLoRA: the base model in bitsandbytes 4-bit, routed experts included")

    optim = parser.add_argument_group("optimisation (TrainingArguments)")
    optim.add_argument("--learning-rate", type=positive_float, default=1e-4, help="learning_rate (default: 1e-4)")
    optim.add_argument("--weight-decay", type=float, default=0.0, help="weight_decay (default: 0)")
    optim.add_argument("--batch-size", type=positive_int, default=1,
                       help="per_device_train_batch_size and per_device_eval_batch_size (default: 1)")
    optim.add_argument("--gradient-accumulation-steps", type=positive_int, default=1,
                       help="gradient_accumulation_steps (default: 1)")
    optim.add_argument("--max-steps", type=positive_int, default=None, help="max_steps (overrides --num-epochs)")
    optim.add_argument("--num-epochs", type=positive_float, default=1.0, help="num_train_epochs (default: 1)")
    optim.add_argument("--lr-scheduler", default="constant", metavar="NAME",
                       help="lr_scheduler_type: constant (default), linear, cosine, constant_with_warmup, ...")
    optim.add_argument("--warmup-steps", type=non_negative_int, default=0, help="warmup_steps (default: 0)")
    optim.add_argument("--max-grad-norm", type=positive_float, default=1.0, help="max_grad_norm (default: 1.0)")
    optim.add_argument("--bf16", action="store_true", help="bf16 mixed precision")
    optim.add_argument("--fp16", action="store_true", help="fp16 mixed precision")
    optim.add_argument("--gradient-checkpointing", action="store_true",
                       help="activation (gradient) checkpointing: less memory, more compute")
    optim.add_argument("--dtype", choices=_DTYPES, default=None,
                       help="dtype of the loaded weights ('auto': the checkpoint's; default: float32 on CPU and for full "
                            "fine-tuning, bfloat16 for LoRA / QLoRA on an accelerator)")
    optim.add_argument("--seed", type=non_negative_int, default=0,
                       help="seed of the adapter's initialisation, the data order and the masking noise (default: 0)")
    optim.add_argument("--device", type=_device, default=None,
                       help="'cpu' to train on CPU processes; default: the accelerator when there is one (several "
                            "processes take one device each, from their local rank)")

    run = parser.add_argument_group("checkpoints and logging")
    run.add_argument("--save-steps", type=positive_int, default=500, help="save a checkpoint every N steps (default: 500)")
    run.add_argument("--save-total-limit", type=positive_int, default=None, help="keep only the newest N checkpoints")
    run.add_argument("--logging-steps", type=positive_int, default=1, help="log the loss every N steps (default: 1)")
    run.add_argument("--eval-steps", type=positive_int, default=None,
                     help="evaluate --eval-data every N steps (default: --save-steps)")
    run.add_argument("--report-to", nargs="+", default=["none"], metavar="NAME",
                     help="report_to: none (default), tensorboard, wandb, ... (several allowed)")
    resume = run.add_mutually_exclusive_group()
    resume.add_argument("--resume", "--resume-from-checkpoint", nargs="?", const=True, default=None,
                        metavar="CHECKPOINT", dest="resume",
                        help="continue from the newest complete checkpoint in --output-dir, or from the given one")
    resume.add_argument("--overwrite", action="store_true",
                        help="start afresh in an --output-dir that holds an earlier run, deleting its checkpoints and "
                             "outputs")
    run.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bars")
    run.add_argument("--no-progress-bar", dest="progress", action="store_false", help=argparse.SUPPRESS)
    run.add_argument("--training-arg", dest="training_args", action="append", type=_training_arg, default=[],
                     metavar="NAME=VALUE",
                     help="set any transformers TrainingArguments field, e.g. --training-arg optim=adafactor "
                          "--training-arg fsdp_config=fsdp.json (repeatable; overrides the options above)")
    return parser


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "train",
        help="fine-tuning (LoRA, QLoRA, full; text, text-to-image, editing) with the masked-diffusion objective",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    return add_arguments(parser)


# --------------------------------------------------------------------------------------------------------------------
# TrainingArguments
# --------------------------------------------------------------------------------------------------------------------


def _convert_training_arg(name: str, text: str, action: argparse.Action):
    """A `--training-arg` value converted as transformers' `HfArgumentParser` converts `--NAME text` (lists from
    comma-separated values; "true" / "false" are booleans)."""
    many = action.nargs in ("+", "*")
    convert = action.type or str
    try:
        values = [convert(part) for part in (text.split(",") if many else [text])]
    except (ValueError, TypeError, argparse.ArgumentTypeError) as error:
        raise ValueError(f"--training-arg {name}={text}: {error}") from None
    if action.choices is not None:
        bad = [v for v in values if v not in action.choices]
        if bad:
            choices = ", ".join(str(getattr(c, "value", c)) for c in action.choices)
            raise ValueError(f"--training-arg {name}={text}: {bad[0]!r} is not one of {choices}.")
    value = values if many else values[0]
    if isinstance(value, str) and value.lower() in ("true", "false"):
        # Fields such as `fsdp` take True although declared as strings (`fsdp=true` + `fsdp_config=FILE`).
        value = value.lower() == "true"
    return value


def build_training_arguments(args: argparse.Namespace) -> TrainingArguments:
    """The `TrainingArguments` of a `train` command line: its options, then every `--training-arg` on top (each value
    converted to its field's type as transformers' `HfArgumentParser` does)."""
    from transformers import HfArgumentParser, TrainingArguments

    if args.bf16 and args.fp16:
        raise ValueError("--bf16 and --fp16 exclude each other.")
    device = torch.device(args.device) if args.device else None
    if device is not None and device.index is not None:
        raise ValueError(
            f"--device {args.device}: the trainer picks the device by process (local rank); select GPUs with "
            "CUDA_VISIBLE_DEVICES instead."
        )
    settings = {
        "output_dir": args.output_dir,
        "learning_rate": args.learning_rate,
        "weight_decay": args.weight_decay,
        "per_device_train_batch_size": args.batch_size,
        "per_device_eval_batch_size": args.batch_size,
        "gradient_accumulation_steps": args.gradient_accumulation_steps,
        "max_steps": args.max_steps if args.max_steps else -1,
        "num_train_epochs": args.num_epochs,
        "lr_scheduler_type": args.lr_scheduler,
        "warmup_steps": args.warmup_steps,
        "max_grad_norm": args.max_grad_norm,
        "bf16": args.bf16,
        "fp16": args.fp16,
        "activation_checkpointing": args.gradient_checkpointing,
        "seed": args.seed,
        "save_strategy": "steps",
        "save_steps": args.save_steps,
        "save_total_limit": args.save_total_limit,
        "logging_strategy": "steps",
        "logging_steps": args.logging_steps,
        "report_to": args.report_to,
        "disable_tqdm": not args.progress,
        "use_cpu": device is not None and device.type == "cpu",
    }
    if args.eval_data:
        settings["eval_strategy"] = "steps"
        settings["eval_steps"] = args.eval_steps or args.save_steps
    fields = {field.name for field in dataclasses.fields(TrainingArguments) if field.init}
    actions = {action.dest: action for action in HfArgumentParser(TrainingArguments)._actions}
    for name, text in args.training_args:
        if name not in fields:
            close = difflib.get_close_matches(name, sorted(fields), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ValueError(f"--training-arg {name}: TrainingArguments has no field {name!r}{hint}.")
        settings[name] = _convert_training_arg(name, text, actions[name])
    training_args = TrainingArguments(**settings)
    if args.streaming and training_args.max_steps <= 0:
        raise ValueError("--streaming reads data of unknown length: give --max-steps.")
    return training_args


# --------------------------------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------------------------------


class _LazyImageTokenizer:
    """The image tokenizer, loaded when the first picture is encoded (text-only data never loads it)."""

    def __init__(self, model_path: Path, path, device):
        self._model_path, self._path, self._device, self._model = Path(model_path), path, device, None

    def _load(self):
        if self._model is None:
            from transformers_llada_uni.modeling_llada_uni_image_tokenizer import LLaDAUniImageVQModel

            folder = self._path
            if folder is None:
                folder = self._model_path / "image_tokenizer"
                if not folder.is_dir():
                    raise ValueError(
                        f"the data gives pictures but {str(folder)!r} does not exist; pass --image-tokenizer or give "
                        "precomputed codes"
                    )
            self._model = LLaDAUniImageVQModel.from_pretrained(folder, dtype="auto").to(self._device).eval()
        return self._model

    @property
    def config(self):
        return self._load().config

    def encode(self, *args, **kwargs):
        return self._load().encode(*args, **kwargs)


def _loss_log_callback(path: Path):
    from transformers import TrainerCallback

    class LossLog(TrainerCallback):
        """`loss.jsonl`: one line per logged step (on resume, lines after the checkpoint's step are dropped)."""

        def on_train_begin(self, args, state, control, **kwargs):
            if not state.is_world_process_zero:
                return
            kept = []
            if state.global_step and path.is_file():
                for line in path.read_text(encoding="utf-8").splitlines():
                    try:
                        if json.loads(line).get("step", 0) <= state.global_step:
                            kept.append(line)
                    except json.JSONDecodeError:
                        continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")

        def on_log(self, args, state, control, logs=None, **kwargs):
            if state.is_world_process_zero and logs and "loss" in logs:
                entry = {"step": state.global_step, **{k: v for k, v in logs.items() if isinstance(v, (int, float))}}
                with open(path, "a", encoding="utf-8") as handle:
                    handle.write(json.dumps(entry) + "\n")

    return LossLog()


def _prepare_output_dir(args, is_main: bool) -> None:
    """Refuses an output folder holding an earlier run unless --resume or --overwrite; --overwrite deletes it."""
    from transformers_llada_uni.training_checkpoint_llada_uni import iter_checkpoints

    out = Path(args.output_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--output-dir {str(out)!r} is a file.")
    earlier = [Path(p) for _, p in iter_checkpoints(out)] + [
        out / name for name in (FINAL_ADAPTER, FINAL_MODEL, LOSS_LOG) if (out / name).exists()
    ]
    if not earlier or args.resume:
        return
    if not args.overwrite:
        names = ", ".join(p.name for p in earlier[:4])
        raise ValueError(
            f"--output-dir {str(out)!r} holds an earlier run ({names}); pass --resume to continue it, --overwrite to "
            "start afresh (deleting it), or choose another folder."
        )
    if is_main:
        for path in earlier:
            if path.name.startswith("checkpoint-"):
                continue  # the trainer deletes those, in step with the other processes
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def _load_model(args, training_args, model_path: Path):
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    from transformers_llada_uni import (
        get_llada_uni_peft_model,
        load_llada_uni_4bit,
        prepare_llada_uni_full_finetuning,
    )

    if args.full_finetuning and (args.load_in_4bit or args.train_routed_experts or args.target_modules):
        raise ValueError("--full-finetuning trains every weight: it takes no LoRA options (--load-in-4bit, "
                         "--train-routed-experts, --target-modules).")
    on_accelerator = training_args.device.type != "cpu"
    if args.dtype is None:
        dtype = torch.bfloat16 if on_accelerator and not args.full_finetuning else torch.float32
    else:
        dtype = "auto" if args.dtype == "auto" else getattr(torch, args.dtype)
    if args.load_in_4bit:
        compute = dtype if isinstance(dtype, torch.dtype) else torch.bfloat16
        quantization = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=compute)
        model = load_llada_uni_4bit(model_path, quantization, dtype=compute, device_map={"": training_args.device})
    else:
        model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype, trust_remote_code=False)
    if args.full_finetuning:
        return prepare_llada_uni_full_finetuning(model)
    return get_llada_uni_peft_model(
        model,
        r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        target_modules=args.target_modules,
        train_routed_experts=args.train_routed_experts,
    )


def _encoded(path, split, args, encoder):
    from transformers_llada_uni import encode_training_dataset, load_training_dataset

    dataset = load_training_dataset(path, split=split, streaming=args.streaming and path == args.data)
    return encode_training_dataset(dataset, encoder, source=str(path))


def train(args: argparse.Namespace) -> dict:
    """Runs a `train` command line; returns a summary (steps, logged losses, output folders, the trained model)."""
    from transformers import set_seed
    from transformers.utils import logging as transformers_logging

    import transformers_llada_uni  # noqa: F401  (Auto registration)
    from transformers_llada_uni import (
        DataCollatorForMaskedDiffusion,
        LLaDAUniMaskedDiffusionTrainer,
        LLaDAUniTrainingDataEncoder,
        MaskedDiffusionConfig,
    )
    from transformers_llada_uni.io_utils_llada_uni import replace_directory

    from transformers_llada_uni.processing_llada_uni import LLaDAUniProcessor

    if importlib.util.find_spec("datasets") is None:
        raise ValueError("llada-uni train reads its data with `datasets`: pip install 'llada-uni[train]'.")
    training_args = build_training_arguments(args)
    is_main = training_args.process_index == 0
    _prepare_output_dir(args, is_main)
    if not args.progress:
        import datasets

        datasets.disable_progress_bars()
        transformers_logging.disable_progress_bar()
    objective = MaskedDiffusionConfig(
        block_length=args.block_length,
        noise_range=tuple(args.noise_range),
        per_block_noise=args.per_block_noise,
        form=args.form,
        loss_weighting=args.loss_weighting,
        text_dropout=args.text_dropout,
        image_dropout=args.image_dropout,
        max_length=args.max_length,
        pad_to_multiple_of=args.pad_to_multiple_of,
    )
    # The adapter's initialisation and everything after it follow the seed, in every process alike.
    set_seed(args.seed)
    model_path = Path(args.model)
    # The processor reads either layout (the released one keeps its image settings in image_tokenizer/).
    processor = LLaDAUniProcessor.from_pretrained(model_path)
    model = _load_model(args, training_args, model_path)
    data_path = Path(args.data)
    encoder = LLaDAUniTrainingDataEncoder(
        processor.tokenizer,
        model.config,
        image_tokenizer=_LazyImageTokenizer(model_path, args.image_tokenizer, training_args.device),
        processor=processor,
        max_length=args.max_length,
        base_dir=str(data_path.parent if data_path.is_file() else data_path) if data_path.exists() else None,
    )
    train_dataset = _encoded(args.data, args.data_split, args, encoder)
    eval_dataset = _encoded(args.eval_data, args.eval_split, args, encoder) if args.eval_data else None
    collator = DataCollatorForMaskedDiffusion(encoder.special, objective, model_config=model.config, seed=args.seed)
    trainer = LLaDAUniMaskedDiffusionTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        data_collator=collator,
        overwrite_output_dir=args.overwrite,
        callbacks=[_loss_log_callback(Path(args.output_dir) / LOSS_LOG)],
    )
    trainer.train(resume_from_checkpoint=args.resume)

    final = Path(args.output_dir) / (FINAL_MODEL if args.full_finetuning else FINAL_ADAPTER)
    staging = final.with_name(f".{final.name}.partial")
    if is_main and staging.exists():
        shutil.rmtree(staging)
    trainer.accelerator.wait_for_everyone()
    trainer.save_model(str(staging))  # every process: FSDP gathers the shards
    trainer.accelerator.wait_for_everyone()
    if is_main:
        # The tokenizer and processor beside the weights: `from_pretrained(final)` finds everything it needs.
        processor.save_pretrained(str(staging))
        replace_directory(staging, final)
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    return {
        "steps": trainer.state.global_step,
        "losses": losses,
        "output_dir": str(args.output_dir),
        "final_dir": str(final),
        "model": trainer.accelerator.unwrap_model(trainer.model),
        "trainer": trainer,
        "is_main_process": is_main,
    }


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text or type(error).__name__


def run(args: argparse.Namespace) -> int:
    try:
        summary = train(args)
    except KeyboardInterrupt:
        raise
    except Exception as error:  # noqa: BLE001 - every failure reaches the user as one line, never a traceback
        if os.environ.get("LLADA_UNI_DEBUG"):
            traceback.print_exc()
        print(f"llada-uni train: error: {_one_line(error)}", file=sys.stderr)
        return 1
    if summary["is_main_process"]:
        what = "model" if summary["final_dir"].endswith(FINAL_MODEL) else "adapter"
        print(f"Trained {summary['steps']} steps; {what} saved to {summary['final_dir']}.")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
