# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""`transformers.Trainer` with LLaDA2.0-Uni's masked-diffusion objective and checkpoints without pickle.

Imported on first use (`from transformers_llada_uni import LLaDAUniMaskedDiffusionTrainer`), so that importing the
package does not import the Trainer stack.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import re
import shutil
from typing import TYPE_CHECKING, Any

import torch
from transformers import Trainer, TrainerCallback
from transformers.trainer_utils import rotate_checkpoints
from transformers.utils import logging

from .training_checkpoint_llada_uni import (
    CHECKPOINT_INFO_NAME,
    FORMAT_VERSION,
    OPTIMIZER_NAME,
    SCALER_NAME,
    SCHEDULER_NAME,
    TRAINING_ARGS_NAME,
    base_model_identity,
    check_optimizer_groups,
    check_tensor_names,
    is_complete_checkpoint,
    iter_checkpoints,
    load_safetensors,
    load_weight_files,
    optimizer_state_from_safetensors,
    optimizer_state_to_safetensors,
    read_json,
    restore_rng_state,
    rng_file_name,
    rng_state_tensors,
    save_safetensors,
    scheduler_state_to_json,
    write_json_atomically,
)
from .training_data_llada_uni import DataCollatorForMaskedDiffusion
from .training_objective_llada_uni import MaskedDiffusionConfig, masked_diffusion_loss

if TYPE_CHECKING:
    import optuna
    from torch import nn
    from transformers.trainer_utils import TrainOutput

    from .training_objective_llada_uni import MaskedDiffusionLossOutput


logger = logging.get_logger(__name__)

ADAPTER_FILES = ("adapter_model.safetensors",)
MODEL_FILES = ("model.safetensors", "model.safetensors.index.json")


class _CollatorEpoch(TrainerCallback):
    """Hands the epoch to the collator, whose noise is keyed by (seed, epoch, example)."""

    def __init__(self, collator: DataCollatorForMaskedDiffusion):
        self.collator = collator

    def on_epoch_begin(self, args, state, control, **kwargs):
        # `state.epoch` is a float that reaches `epoch + 1.0` exactly at an epoch's last step.
        self.collator.set_epoch(math.floor((state.epoch or 0.0) + 1e-6))


def _is_peft(model) -> bool:
    return hasattr(model, "peft_config") and hasattr(model, "active_adapter")


class LLaDAUniMaskedDiffusionTrainer(Trainer):
    r"""
    A [`~transformers.Trainer`] whose loss is the masked-diffusion objective ([`masked_diffusion_loss`]) and whose
    checkpoints hold no pickle.

    Give it a [`DataCollatorForMaskedDiffusion`] as `data_collator` and a data set of encoded rows
    ([`encode_training_dataset`]); the objective's form and loss weighting are the collator's
    [`MaskedDiffusionConfig`]. The rest is Trainer's own: PEFT or full models, gradient accumulation, learning-rate
    schedules, mixed precision, evaluation (`eval_loss`), callbacks and `report_to`, `save_total_limit`, and data
    parallel, FSDP2 or DeepSpeed training configured the accelerate way (`accelerate launch --config_file ...` or the
    `fsdp` / `deepspeed` training arguments). On CPU processes, where accelerate builds no FSDP, an FSDP request is
    carried out with FSDP2 (`fully_shard`) over gloo all the same.

    Checkpoints (see `training_checkpoint_llada_uni`) are safetensors and JSON: full tensors gathered from FSDP shards,
    so any number of processes (one included) resumes or loads them. `train(resume_from_checkpoint=...)` refuses, with
    a one-line reason, a checkpoint of another base model, adapter or model tensors that differ from the run's, an
    optimizer state whose hyper-parameters disagree with the run's, a global batch (processes x batch x accumulation)
    other than the checkpoint's, and a DeepSpeed checkpoint of another world size. A new run refuses an `output_dir`
    that holds checkpoints unless `overwrite_output_dir=True` (which deletes them) or it resumes.

    Args:
        overwrite_output_dir: start afresh in an `output_dir` holding checkpoints of an earlier run, deleting them.
        *args, **kwargs: as [`~transformers.Trainer`].

    Example:
        ```py
        >>> encoder = LLaDAUniTrainingDataEncoder(tokenizer, model.config)
        >>> collator = DataCollatorForMaskedDiffusion(encoder.special, MaskedDiffusionConfig(), model_config=model.config)
        >>> train = encode_training_dataset(load_training_dataset("train.jsonl"), encoder, source="train.jsonl")
        >>> trainer = LLaDAUniMaskedDiffusionTrainer(
        ...     model=get_llada_uni_peft_model(model), args=TrainingArguments("out", max_steps=1000),
        ...     train_dataset=train, data_collator=collator,
        ... )
        >>> trainer.train()
        ```
    """

    def __init__(self, *args: Any, overwrite_output_dir: bool = False, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if not isinstance(self.data_collator, DataCollatorForMaskedDiffusion):
            raise TypeError(
                "`data_collator` must be a DataCollatorForMaskedDiffusion (it noises the batches the loss needs), got "
                f"{type(self.data_collator).__name__}."
            )
        for name in ("train_dataset", "eval_dataset"):
            _check_encoded(getattr(self, name), name)
        if self.args.dataloader_persistent_workers and self.args.dataloader_num_workers > 0:
            raise ValueError(
                "`dataloader_persistent_workers` keeps the collator of the first epoch in the workers, so the noise would "
                "not change with the epoch: leave it off."
            )
        # The collated fields (noisy ids, masked positions, noise levels) are not arguments of `forward`: Trainer must
        # not drop them.
        self.args.remove_unused_columns = False
        self.overwrite_output_dir = overwrite_output_dir
        self._writing_checkpoint = False
        self.add_callback(_CollatorEpoch(self.data_collator))

    # ---------------------------------------------------------------------------------------------- objective --
    @property
    def objective(self) -> MaskedDiffusionConfig:
        collator = self.data_collator
        return dataclasses.replace(collator.config, block_length=collator.block_length)

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, torch.Tensor],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, MaskedDiffusionLossOutput]:
        # The loss is normalised per sequence, then averaged over the batch (the public recipe): a token count
        # across the accumulated batches (`num_items_in_batch`) does not apply.
        output = masked_diffusion_loss(model, inputs, self.objective)
        return (output.loss, output) if return_outputs else output.loss

    def prediction_step(
        self,
        model: nn.Module,
        inputs: dict[str, torch.Tensor],
        prediction_loss_only: bool,
        ignore_keys: list[str] | None = None,
    ) -> tuple[torch.Tensor, None, None]:
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad(), self.compute_loss_context_manager():
            loss = masked_diffusion_loss(model, inputs, self.objective).loss
        return loss.detach(), None, None

    # ------------------------------------------------------------------------------------------------ engines --
    def create_accelerator_and_postprocess(self) -> None:
        super().create_accelerator_and_postprocess()
        from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

        state = self.accelerator.state
        wants_fsdp = self.args.fsdp_plugin_args is not None or os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true"
        if wants_fsdp and not self.is_fsdp_enabled and state.distributed_type == DistributedType.MULTI_CPU:
            # accelerate builds FSDP only on accelerators; FSDP2 itself runs on CPU processes over gloo, so take
            # accelerate's own FSDP2 path there too.
            plugin = FullyShardedDataParallelPlugin(**(self.args.fsdp_plugin_args or {}))
            state.distributed_type = DistributedType.FSDP
            state.fsdp_plugin = plugin
            self.is_fsdp_enabled = True
        if self.is_fsdp_enabled:
            plugin = state.fsdp_plugin
            if "FULL_STATE_DICT" not in str(plugin.state_dict_type):
                logger.warning(
                    "FSDP state_dict_type %s: checkpoints are written as full (gathered) safetensors instead, since "
                    "sharded ones (torch.distributed.checkpoint) pickle their metadata.", plugin.state_dict_type
                )
                plugin.set_state_dict_type("FULL_STATE_DICT")

    def _engine(self) -> str:
        if self.is_deepspeed_enabled:
            return "deepspeed"
        if self.is_fsdp_enabled:
            return "fsdp"
        return "ddp" if self.args.world_size > 1 else "single"

    def _distributed(self) -> bool:
        return torch.distributed.is_available() and torch.distributed.is_initialized()

    # ------------------------------------------------------------------------------------------------- resume --
    def train(
        self,
        resume_from_checkpoint: str | bool | None = None,
        trial: optuna.Trial | dict[str, Any] | None = None,
        ignore_keys_for_eval: list[str] | None = None,
        **kwargs: Any,
    ) -> TrainOutput:
        """As [`~transformers.Trainer.train`]; `resume_from_checkpoint=True` takes the newest complete checkpoint of
        `output_dir`. The checkpoint is checked before anything loads (see the class docstring)."""
        output_dir = self.args.output_dir
        if resume_from_checkpoint is False:
            resume_from_checkpoint = None
        if resume_from_checkpoint is True:
            complete = [path for _, path in iter_checkpoints(output_dir) if is_complete_checkpoint(path)]
            if not complete:
                raise ValueError(f"resume: {output_dir!r} holds no complete checkpoint-N folder to resume from.")
            resume_from_checkpoint = complete[-1]
        if resume_from_checkpoint is not None:
            resume_from_checkpoint = os.fspath(resume_from_checkpoint)
            self._check_checkpoint(resume_from_checkpoint)
        else:
            self._start_afresh(output_dir)
        return super().train(
            resume_from_checkpoint=resume_from_checkpoint, trial=trial, ignore_keys_for_eval=ignore_keys_for_eval, **kwargs
        )

    def _start_afresh(self, output_dir: str) -> None:
        old = [path for _, path in iter_checkpoints(output_dir)]
        # Every process looks before the main one deletes anything, so all of them decide alike.
        self.accelerator.wait_for_everyone()
        if old and not self.overwrite_output_dir:
            names = ", ".join(os.path.basename(p) for p in old[-3:])
            raise ValueError(
                f"{output_dir!r} already holds checkpoints of an earlier run ({names}); resume it "
                "(resume_from_checkpoint=True, `--resume`), overwrite it (overwrite_output_dir=True, `--overwrite`) or "
                "choose another output folder."
            )
        if old and self.args.should_save:
            for path in old:
                shutil.rmtree(path)
        self.accelerator.wait_for_everyone()

    def _check_checkpoint(self, checkpoint: str) -> None:
        if not os.path.isdir(checkpoint):
            raise ValueError(f"resume: {checkpoint!r} is not a checkpoint folder.")
        if not is_complete_checkpoint(checkpoint):
            raise ValueError(
                f"resume: {checkpoint!r} has no {CHECKPOINT_INFO_NAME}: it is unfinished (the run stopped while "
                "writing it) or was not written by LLaDAUniMaskedDiffusionTrainer."
            )
        info = read_json(os.path.join(checkpoint, CHECKPOINT_INFO_NAME), "checkpoint description")
        if not isinstance(info, dict) or info.get("format") != FORMAT_VERSION:
            raise ValueError(f"resume: {checkpoint!r} has a checkpoint description of an unknown format.")
        state_path = os.path.join(checkpoint, "trainer_state.json")
        state = read_json(state_path, "trainer state")
        if not isinstance(state, dict) or not isinstance(state.get("global_step"), int):
            raise ValueError(f"resume: {state_path} has no global_step: the trainer state is damaged.")
        if state["global_step"] != info.get("global_step"):
            raise ValueError(
                f"resume: {state_path} is at step {state['global_step']} but the checkpoint was written at step "
                f"{info.get('global_step')}: the trainer state is damaged."
            )
        ours = base_model_identity(self._base_config())
        theirs = info.get("base_model") or {}
        if theirs.get("identity") != ours["identity"]:
            raise ValueError(
                f"resume: {checkpoint!r} was trained from another base model ({theirs.get('name_or_path') or '?'}, "
                f"configuration identity {theirs.get('identity')}); this run's is {ours['name_or_path'] or '?'} "
                f"({ours['identity']})."
            )
        weights = "adapter" if _is_peft(self.model) else "model"
        if info.get("weights") != weights:
            raise ValueError(
                f"resume: {checkpoint!r} holds a trained {info.get('weights')}, this run trains a {weights} "
                f"({'LoRA' if weights == 'adapter' else 'full fine-tuning'})."
            )
        engine, world = self._engine(), self.args.world_size
        saved_world = int(info.get("world_size", 1))
        if "deepspeed" in (engine, info.get("engine")) and (engine != info.get("engine") or world != saved_world):
            raise ValueError(
                f"resume: {checkpoint!r} was written by {info.get('engine')} with {saved_world} process(es); this run "
                f"uses {engine} with {world}: DeepSpeed's sharded states resume only with the same engine and number of "
                "processes."
            )
        saved_batch = int(info.get("global_batch_size", 0))
        batch = self._global_batch_size()
        if saved_batch != batch:
            raise ValueError(
                f"resume: {checkpoint!r} was trained with a global batch of {saved_batch} ({saved_world} process(es) x "
                f"{info.get('per_device_train_batch_size')} x {info.get('gradient_accumulation_steps')} accumulation "
                f"step(s)); this run's is {batch} ({world} x {self.args.per_device_train_batch_size} x "
                f"{self.args.gradient_accumulation_steps}): the data position of its steps cannot be carried over. Keep "
                "processes x batch size x accumulation steps equal."
            )

    def _global_batch_size(self) -> int:
        return self.args.world_size * self.args.per_device_train_batch_size * self.args.gradient_accumulation_steps

    def _base_config(self):
        model = self.accelerator.unwrap_model(self.model, keep_torch_compile=False) if hasattr(self, "accelerator") else self.model
        return model.config

    def _named_trainable(self, model) -> dict[str, torch.nn.Parameter]:
        return {name: p for name, p in model.named_parameters() if p.requires_grad}

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        model = self.model if model is None else model
        unwrapped = self.accelerator.unwrap_model(model, keep_torch_compile=False)
        if _is_peft(unwrapped):
            saved = load_weight_files(resume_from_checkpoint, ADAPTER_FILES, "adapter")
            names = _adapter_tensor_names(unwrapped)
            check_tensor_names(saved, {k: shape for k, (_, shape) in names.items()}, resume_from_checkpoint, "adapter")
            state = {names[key][0]: tensor for key, tensor in saved.items()}
        else:
            state = load_weight_files(resume_from_checkpoint, MODEL_FILES, "model weights")
            expected = {name: tensor.shape for name, tensor in unwrapped.state_dict().items()}
            check_tensor_names(state, expected, resume_from_checkpoint, "model weights")
        self._set_model_state(unwrapped, state)

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        if not self.is_fsdp_enabled:
            return super().save_model(output_dir, _internal_call=_internal_call)
        # Gathered here rather than by accelerate: only the adapter's tensors for a PEFT model, and full tensors
        # (accelerate's broadcast variant leaves DTensors on CPU processes).
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
        from torch.distributed.tensor import DTensor

        unwrapped = self.accelerator.unwrap_model(self.model, keep_torch_compile=False)
        if _is_peft(unwrapped):
            local = unwrapped.state_dict()
            state_dict = {}
            for name, _ in _adapter_tensor_names(unwrapped).values():
                tensor = local[name]
                tensor = tensor.full_tensor() if isinstance(tensor, DTensor) else tensor
                if self.args.should_save:
                    state_dict[name] = tensor.detach().cpu()
        else:
            state_dict = get_model_state_dict(self.model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        self._save(output_dir if output_dir is not None else self.args.output_dir, state_dict=state_dict)
        if self.args.push_to_hub and not _internal_call:
            self.push_to_hub(commit_message="Model save", revision=self.args.hub_revision)

    def _set_model_state(self, model, state) -> None:
        if self.is_fsdp_enabled:
            from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

            # Every rank read the file; each keeps its own shard of every tensor.
            set_model_state_dict(model, state, options=StateDictOptions(full_state_dict=True, strict=False))
            return
        reference = model.state_dict()
        with torch.no_grad():
            for name, tensor in state.items():
                reference[name].copy_(tensor.to(reference[name].dtype))

    # ----------------------------------------------------------------------------------------------- checkpoints --
    def _save_checkpoint(self, model, trial) -> None:
        run_dir = self._get_output_dir(trial=trial)
        folder = os.path.join(run_dir, f"checkpoint-{self.state.global_step}")
        if self.args.should_save and os.path.isdir(folder):
            # Left by an earlier run (resumed from an older checkpoint, or stopped while writing): no stale files.
            shutil.rmtree(folder)
        self.accelerator.wait_for_everyone()
        limit = self.args.save_total_limit
        # Old checkpoints are rotated out only once the new one is complete.
        self.args.save_total_limit = None
        self._writing_checkpoint = True
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self.args.save_total_limit = limit
            self._writing_checkpoint = False
        self.accelerator.wait_for_everyone()
        if self.args.should_save:
            write_json_atomically(os.path.join(folder, CHECKPOINT_INFO_NAME), self._checkpoint_info())
            rotate_checkpoints(
                output_dir=run_dir, save_total_limit=limit, best_model_checkpoint=self.state.best_model_checkpoint
            )
        self.accelerator.wait_for_everyone()

    def _checkpoint_info(self) -> dict:
        return {
            "format": FORMAT_VERSION,
            "base_model": base_model_identity(self._base_config()),
            "weights": "adapter" if _is_peft(self.accelerator.unwrap_model(self.model)) else "model",
            "engine": self._engine(),
            "world_size": self.args.world_size,
            "per_device_train_batch_size": self.args.per_device_train_batch_size,
            "gradient_accumulation_steps": self.args.gradient_accumulation_steps,
            "global_batch_size": self._global_batch_size(),
            "global_step": self.state.global_step,
        }

    def _save(self, output_dir=None, state_dict=None) -> None:
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        if not self.args.should_save:
            return
        os.makedirs(output_dir, exist_ok=True)
        model = self.accelerator.unwrap_model(self.model, keep_torch_compile=False)
        if _is_peft(model):
            model.save_pretrained(output_dir, state_dict=state_dict, safe_serialization=True)
        elif hasattr(model, "save_pretrained"):
            # A checkpoint keeps the model's own parameter names, so resuming reads it back without conversion;
            # the final model is written in the released (per-expert) layout. `from_pretrained` reads both.
            with _without_fsdp_class(model):
                model.save_pretrained(
                    output_dir, state_dict=state_dict, save_original_format=not self._writing_checkpoint
                )
        else:
            save_safetensors(state_dict if state_dict is not None else model.state_dict(), os.path.join(output_dir, "model.safetensors"))
        if self.processing_class is not None:
            self.processing_class.save_pretrained(output_dir)
        with open(os.path.join(output_dir, TRAINING_ARGS_NAME), "w", encoding="utf-8") as handle:
            handle.write(self.args.to_json_string())

    def _optimizer_names(self) -> dict[int, str]:
        return {id(p): name for name, p in self.model.named_parameters()}

    def _save_optimizer_and_scheduler(self, output_dir: str) -> None:
        if self.is_deepspeed_enabled:
            # DeepSpeed's engine writes its own (sharded) model and optimizer states.
            self.model_wrapped.save_checkpoint(output_dir, exclude_frozen_parameters=_is_peft(self.model))
        else:
            from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

            optimizer = getattr(self.optimizer, "optimizer", self.optimizer)
            options = StateDictOptions(full_state_dict=True, cpu_offload=True) if self._distributed() else None
            state = get_optimizer_state_dict(self.model, optimizer, options=options)
            if self.args.should_save:
                tensors, metadata = optimizer_state_to_safetensors(state, type(optimizer).__name__)
                save_safetensors(tensors, os.path.join(output_dir, OPTIMIZER_NAME), metadata=metadata)
        if self.args.should_save and not type(self.lr_scheduler).__name__.startswith("DeepSpeed"):
            write_json_atomically(os.path.join(output_dir, SCHEDULER_NAME), scheduler_state_to_json(self.lr_scheduler))

    def _save_scaler(self, output_dir: str) -> None:
        scaler = getattr(self.accelerator, "scaler", None)
        if scaler is not None and self.args.should_save:
            write_json_atomically(os.path.join(output_dir, SCALER_NAME), scaler.state_dict())

    def _save_rng_state(self, output_dir: str) -> None:
        os.makedirs(output_dir, exist_ok=True)
        tensors, metadata = rng_state_tensors()
        save_safetensors(
            tensors, os.path.join(output_dir, rng_file_name(self.args.world_size, self.args.process_index)), metadata
        )

    def _load_optimizer_and_scheduler(self, checkpoint) -> None:
        if checkpoint is None:
            return
        scheduler_path = os.path.join(checkpoint, SCHEDULER_NAME)
        scheduler = None
        if not type(self.lr_scheduler).__name__.startswith("DeepSpeed"):
            scheduler = read_json(scheduler_path, "learning-rate scheduler state")
            if not isinstance(scheduler, dict) or scheduler.get("class") != type(self.lr_scheduler).__name__:
                raise ValueError(
                    f"{scheduler_path} holds a {scheduler.get('class') if isinstance(scheduler, dict) else '?'} state, "
                    f"this run's scheduler is a {type(self.lr_scheduler).__name__}."
                )
        if not self.is_deepspeed_enabled:
            self._load_optimizer(os.path.join(checkpoint, OPTIMIZER_NAME), scheduler)
        if scheduler is not None:
            try:
                self.lr_scheduler.load_state_dict(scheduler["state"])
            except (KeyError, TypeError, ValueError) as error:
                raise ValueError(f"{scheduler_path} does not fit this run's scheduler ({error!r}).") from None

    def _load_optimizer(self, path: str, scheduler) -> None:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        optimizer = getattr(self.optimizer, "optimizer", self.optimizer)
        state, optimizer_class = optimizer_state_from_safetensors(path)
        if optimizer_class != type(optimizer).__name__:
            raise ValueError(f"{path} holds a {optimizer_class} state, this run's optimizer is a {type(optimizer).__name__}.")
        names = self._optimizer_names()
        current = [
            {**{k: v for k, v in group.items() if k != "params"}, "params": [names[id(p)] for p in group["params"]]}
            for group in optimizer.param_groups
        ]
        last_lr = (scheduler or {}).get("state", {}).get("_last_lr")
        check_optimizer_groups(state["param_groups"], current, last_lr, path)
        saved_params = {name for group in state["param_groups"] for name in group["params"]}
        if set(state["state"]) - saved_params:
            raise ValueError(f"{path} holds optimizer state for parameters outside its groups: it is damaged.")
        options = StateDictOptions(full_state_dict=True) if self._distributed() else None
        set_optimizer_state_dict(self.model, optimizer, optim_state_dict=state, options=options)

    def _load_scaler(self, checkpoint) -> None:
        scaler = getattr(self.accelerator, "scaler", None)
        if checkpoint is None or scaler is None:
            return
        path = os.path.join(checkpoint, SCALER_NAME)
        if os.path.isfile(path):
            scaler.load_state_dict(read_json(path, "gradient scaler state"))

    def _load_rng_state(self, checkpoint) -> None:
        if checkpoint is None:
            return
        path = os.path.join(checkpoint, rng_file_name(self.args.world_size, self.args.process_index))
        if not os.path.isfile(path):
            logger.warning(
                "%s has no random-generator state for process %d of %d (it was written by another number of processes): "
                "dropout draws restart from this run's seed; the masking noise does not depend on them.",
                checkpoint, self.args.process_index, self.args.world_size,
            )
            return
        tensors, metadata = load_safetensors(path, "random-generator state")
        restore_rng_state(tensors, metadata, path)


@contextlib.contextmanager
def _without_fsdp_class(model):
    """`fully_shard` swaps the model's class for a generated `FSDP<Class>` defined in torch; saving a registered model
    copies its class's source files and names the class in `auto_map`, which must be the model's own."""
    from torch.distributed.fsdp import FSDPModule

    generated = type(model)
    if not isinstance(model, FSDPModule):
        yield
        return
    model.__class__ = next(base for base in generated.__bases__ if base is not FSDPModule)
    try:
        yield
    finally:
        model.__class__ = generated


def _adapter_tensor_names(peft_model) -> dict[str, tuple[str, torch.Size]]:
    """PEFT's saved adapter keys -> (the model's own name of that tensor, its shape)."""
    from peft import get_peft_model_state_dict

    saved = get_peft_model_state_dict(peft_model, adapter_name=peft_model.active_adapter)
    # PEFT drops the adapter name from the keys it saves.
    pattern = re.compile(rf"\.{re.escape(peft_model.active_adapter)}(?=\.|$)")
    names = {pattern.sub("", name): name for name in peft_model.state_dict()}
    return {key: (names[key], tensor.shape) for key, tensor in saved.items()}


def _check_encoded(dataset, name: str) -> None:
    columns = getattr(dataset, "column_names", None)
    if isinstance(columns, dict):
        raise TypeError(f"`{name}` is a DatasetDict; pass one split (e.g. dataset['train']).")
    if columns and "prompt_ids" not in columns:
        raise TypeError(
            f"`{name}` has the columns {columns}, not encoded examples; encode it with "
            "`encode_training_dataset(dataset, LLaDAUniTrainingDataEncoder(tokenizer, model.config))`."
        )


__all__ = ["LLaDAUniMaskedDiffusionTrainer"]
