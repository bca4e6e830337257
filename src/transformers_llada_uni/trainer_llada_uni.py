# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""`transformers.Trainer` with LLaDA2.0-Uni's masked-diffusion objective.

Imported on first use (`from transformers_llada_uni import LLaDAUniMaskedDiffusionTrainer`), so that importing the
package does not import the Trainer stack.
"""

from __future__ import annotations

import dataclasses

import torch
from transformers import Trainer

from .training_llada_uni import DataCollatorForMaskedDiffusion, MaskedDiffusionConfig, masked_diffusion_loss


class LLaDAUniMaskedDiffusionTrainer(Trainer):
    r"""
    A [`~transformers.Trainer`] whose loss is the masked-diffusion objective ([`masked_diffusion_loss`]).

    Give it a [`DataCollatorForMaskedDiffusion`] as `data_collator` and a dataset of encoded examples (a
    `MaskedDiffusionDataset`, or anything whose items [`LLaDAUniTrainingDataEncoder`] made); the objective's form and
    loss weighting are the collator's [`MaskedDiffusionConfig`]. The rest is Trainer's own: PEFT models (adapters are
    what `save_model` writes), gradient accumulation, mixed precision, evaluation (`eval_loss`), callbacks, several
    GPUs through accelerate.

    Example:
        ```py
        >>> encoder = LLaDAUniTrainingDataEncoder(tokenizer, model.config)
        >>> collator = DataCollatorForMaskedDiffusion(encoder.special, MaskedDiffusionConfig(), model_config=model.config)
        >>> trainer = LLaDAUniMaskedDiffusionTrainer(
        ...     model=get_llada_uni_peft_model(model), args=TrainingArguments("out", max_steps=1000),
        ...     train_dataset=MaskedDiffusionDataset.from_jsonl("train.jsonl", encoder), data_collator=collator,
        ... )
        >>> trainer.train()
        ```

    Trainer's checkpoints keep its optimizer and scheduler state in torch's own format; `llada-uni train` writes
    safetensors only.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not isinstance(self.data_collator, DataCollatorForMaskedDiffusion):
            raise TypeError(
                "`data_collator` must be a DataCollatorForMaskedDiffusion (it noises the batches the loss needs), got "
                f"{type(self.data_collator).__name__}."
            )
        # The collated fields (noisy ids, masked positions, noise levels) are not arguments of `forward`: Trainer must
        # not drop them.
        self.args.remove_unused_columns = False

    @property
    def objective(self) -> MaskedDiffusionConfig:
        collator = self.data_collator
        return dataclasses.replace(collator.config, block_length=collator.block_length)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        # The loss is normalised per sequence, then averaged over the batch (the public recipe): a token count
        # across the accumulated batches (`num_items_in_batch`) does not apply.
        output = masked_diffusion_loss(model, inputs, self.objective)
        return (output.loss, output) if return_outputs else output.loss

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad(), self.compute_loss_context_manager():
            loss = masked_diffusion_loss(model, inputs, self.objective).loss
        return loss.detach(), None, None


__all__ = ["LLaDAUniMaskedDiffusionTrainer"]
