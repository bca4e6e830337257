# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""The masked-diffusion objective of LLaDA2.0-Uni fine-tuning: its options, the block-diffusion mask and the loss.

It follows the public LLaDA2.0 recipe (dFactory):

- no label shift: the logits at position i predict token i, and the loss is taken only where the input was masked;
- the doubled sequence ``[x_t | x_0]`` (both halves at positions ``0..L-1``, blocks of ``block_length`` counted from
  position 0) under the Block-Diffusion (BD3-LM) mask: a noisy token sees its own noisy block and the clean copies of
  earlier blocks, a clean token sees the clean tokens of its own and earlier blocks; the loss is on the noisy half;
- per sequence, the summed cross-entropy over masked tokens divided by their number, then the batch mean.

The model's own `labels=` loss (masked-LM, a token mean over the labelled positions) equals this loss for one
sequence, but not for a batch whose sequences have different numbers of masked tokens, and it has no `1/t` weighting;
so the objective takes the logits at the masked positions (`logits_to_keep`) and reduces them itself.

The one-block form (``form="one_block"``) trains one block per pass: ``x_0[:start] + x_t[start:end]`` under the
block-causal mask, which gives exactly the logits that the doubled form gives for that block.

The noisy batches come from [`DataCollatorForMaskedDiffusion`] (`training_data_llada_uni`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from transformers import PreTrainedConfig


FORMS = ("doubled", "one_block")
LOSS_WEIGHTINGS = ("none", "inverse_t")


@dataclass
class MaskedDiffusionConfig:
    """Options of the masked-diffusion objective.

    Args:
        block_length: blocks of the block-diffusion mask, counted from position 0 (the model's
            `config.block_length`, 32 for the release, when None).
        noise_range: `(lo, hi)` of the uniform noise level, `0 < lo <= hi <= 1`.
        per_block_noise: one noise level per block instead of per sequence.
        form: `"doubled"` (`[x_t | x_0]` under the BD3-LM mask, every block per pass) or `"one_block"` (one block per
            pass: clean prefix + that noisy block, block-causal).
        loss_weighting: `"none"` (public recipe: mean over masked tokens) or `"inverse_t"` (original LLaDA: each
            masked token's loss divided by its noise level, summed, divided by the number of maskable tokens; use it
            with `noise_range=(1e-3, 1.0)`).
        text_dropout: probability of replacing a text-to-image caption or an editing instruction with
            `<uncondition>` (0.1 in the closest published recipe).
        image_dropout: probability of replacing an editing source image with a bare `<|image|>`.
        max_length: longest allowed padded sequence (records that do not fit are rejected by the encoder).
        pad_to_multiple_of: round the batch length up (EOS padding for text targets).
    """

    block_length: int | None = None
    noise_range: tuple[float, float] = (0.3, 0.8)
    per_block_noise: bool = False
    form: str = "doubled"
    loss_weighting: str = "none"
    text_dropout: float = 0.0
    image_dropout: float = 0.0
    max_length: int | None = None
    pad_to_multiple_of: int | None = None

    def __post_init__(self):
        if self.block_length is not None and (not isinstance(self.block_length, int) or self.block_length <= 0):
            raise ValueError(f"`block_length` must be a positive integer or None, got {self.block_length!r}.")
        if not isinstance(self.noise_range, (tuple, list)) or len(self.noise_range) != 2:
            raise ValueError(f"`noise_range` must be a pair (lo, hi), got {self.noise_range!r}.")
        lo, hi = (float(v) for v in self.noise_range)
        if not 0.0 < lo <= hi <= 1.0:
            raise ValueError(f"`noise_range` must satisfy 0 < lo <= hi <= 1, got {self.noise_range!r}.")
        self.noise_range = (lo, hi)
        if self.form not in FORMS:
            raise ValueError(f"`form` must be one of {FORMS}, got {self.form!r}.")
        if self.loss_weighting not in LOSS_WEIGHTINGS:
            raise ValueError(f"`loss_weighting` must be one of {LOSS_WEIGHTINGS}, got {self.loss_weighting!r}.")
        for name in ("text_dropout", "image_dropout"):
            value = getattr(self, name)
            if not 0.0 <= float(value) < 1.0:
                raise ValueError(f"`{name}` must be in [0, 1), got {value!r}.")
        for name in ("max_length", "pad_to_multiple_of"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value <= 0):
                raise ValueError(f"`{name}` must be a positive integer or None, got {value!r}.")

    def resolved_block_length(self, model_config: PreTrainedConfig | None = None) -> int:
        if self.block_length is not None:
            return self.block_length
        if model_config is not None and getattr(model_config, "block_length", None):
            return int(model_config.block_length)
        raise ValueError("`block_length` is not set and no model config gives one.")



def block_diffusion_attention_mask(attention_mask: torch.Tensor, block_length: int) -> torch.Tensor:
    """The BD3-LM mask of the doubled sequence `[x_t | x_0]`, boolean `[B, 1, 2L, 2L]` (True = attend).

    A noisy token sees its own noisy block and the clean copies of earlier blocks; a clean token sees the clean tokens
    of its own and earlier blocks; padding keys (attention_mask 0) are never seen.
    """
    if attention_mask.ndim != 2:
        raise ValueError(f"`attention_mask` must be 2-D [batch, length], got shape {tuple(attention_mask.shape)}.")
    if not isinstance(block_length, int) or block_length <= 0:
        raise ValueError(f"`block_length` must be a positive integer, got {block_length!r}.")
    length = attention_mask.shape[1]
    block = torch.arange(length, device=attention_mask.device) // block_length
    q, k = block[:, None], block[None, :]
    noisy_noisy = q == k
    noisy_clean = k < q
    clean_clean = k <= q
    clean_noisy = torch.zeros_like(noisy_noisy)
    pattern = torch.cat(
        [torch.cat([noisy_noisy, noisy_clean], dim=1), torch.cat([clean_noisy, clean_clean], dim=1)], dim=0
    )
    keys = attention_mask.bool().repeat(1, 2)
    return (pattern[None, :, :] & keys[:, None, :])[:, None, :, :]


@dataclass
class MaskedDiffusionLossOutput:
    """What [`masked_diffusion_loss`] returns.

    Args:
        loss: the batch loss (mean of the per-sequence losses of sequences with a masked token).
        per_sequence_loss: `[B]`, each sequence's loss (0 where nothing was masked).
        num_masked: `[B]`, masked tokens per sequence (in the trained block for the one-block form).
        logits: `[num masked, vocab]` logits at the loss positions, when asked for.
    """

    loss: torch.Tensor
    per_sequence_loss: torch.Tensor
    num_masked: torch.Tensor
    logits: torch.Tensor | None = None


def _masked_positions_forward(model, input_ids, attention_mask, position_ids, keep, block_length=None):
    kwargs = {}
    if block_length is not None:
        kwargs["block_length"] = block_length
    outputs = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids,
        logits_to_keep=keep,
        use_cache=False,
        **kwargs,
    )
    return outputs.logits


def masked_diffusion_loss(
    model: nn.Module,
    batch: Mapping[str, torch.Tensor],
    config: MaskedDiffusionConfig | None = None,
    return_logits: bool = False,
) -> MaskedDiffusionLossOutput:
    """The masked-diffusion loss of a batch from [`DataCollatorForMaskedDiffusion`].

    The LM head runs only at masked positions (`logits_to_keep` as a boolean mask). The form is the one-block form
    when the batch carries `block_index`, else the doubled form. Sequences without any masked token are left out of
    the batch mean; a batch without any masked token gives a zero loss that still back-propagates.
    """
    config = config if config is not None else MaskedDiffusionConfig()
    required = ("input_ids", "noisy_input_ids", "masked", "attention_mask", "noise_level")
    missing = [key for key in required if key not in batch]
    if missing:
        raise ValueError(f"The batch lacks {missing}; build it with DataCollatorForMaskedDiffusion.")
    model_config = getattr(model, "config", None)
    block_length = config.resolved_block_length(model_config)
    clean, noisy = batch["input_ids"], batch["noisy_input_ids"]
    masked, attention_mask = batch["masked"].bool(), batch["attention_mask"]
    batch_size, length = clean.shape
    device = clean.device
    positions = torch.arange(length, device=device)

    if "block_index" in batch:
        block_index = batch["block_index"].to(device)
        block_of = positions // block_length
        in_block = block_of[None, :] == block_index[:, None]
        loss_positions = masked & in_block
        ends = ((block_index + 1) * block_length).clamp(max=length)
        window = int(ends.max())
        # Clean prefix before the chosen block, the noisy block itself; nothing after it is needed.
        ids = torch.where(block_of[None, :] < block_index[:, None], clean, noisy)[:, :window]
        pad = attention_mask.bool()[:, :window] & (positions[None, :window] < ends[:, None])
        logits = _masked_positions_forward(
            model,
            ids,
            pad.long(),
            positions[:window][None, :].expand(batch_size, window),
            loss_positions[:, :window],
            block_length=block_length,
        )
    else:
        loss_positions = masked
        ids = torch.cat([noisy, clean], dim=1)
        mask4d = block_diffusion_attention_mask(attention_mask, block_length)
        pos = positions.repeat(2)[None, :].expand(batch_size, 2 * length)
        keep = torch.cat([masked, torch.zeros_like(masked)], dim=1)
        logits = _masked_positions_forward(model, ids, mask4d, pos, keep)

    targets = clean[loss_positions]
    token_loss = F.cross_entropy(logits.float(), targets, reduction="none")
    rows = loss_positions.nonzero()[:, 0]
    num_masked = loss_positions.sum(dim=1)
    if config.loss_weighting == "inverse_t":
        token_loss = token_loss / batch["noise_level"].to(token_loss.device)[loss_positions]
        if "block_index" in batch:
            denominator = (batch["maskable"].bool() & in_block).sum(dim=1) if "maskable" in batch else num_masked
        else:
            denominator = batch["maskable"].bool().sum(dim=1) if "maskable" in batch else num_masked
    else:
        denominator = num_masked
    summed = torch.zeros(batch_size, dtype=token_loss.dtype, device=token_loss.device).index_add(0, rows, token_loss)
    valid = num_masked > 0
    per_sequence = summed / denominator.clamp(min=1).to(summed.dtype)
    if valid.any():
        loss = per_sequence[valid].mean()
    else:
        loss = logits.sum() * 0.0
    return MaskedDiffusionLossOutput(
        loss=loss, per_sequence_loss=per_sequence, num_masked=num_masked, logits=logits if return_logits else None
    )


__all__ = [
    "FORMS",
    "LOSS_WEIGHTINGS",
    "MaskedDiffusionConfig",
    "block_diffusion_attention_mask",
    "MaskedDiffusionLossOutput",
    "masked_diffusion_loss",
]
