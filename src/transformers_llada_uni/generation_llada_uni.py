# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""Block-diffusion generation for LLaDA2.0-Uni.

One engine (`_BlockDiffusionDecoder`) fills `<|mask|>` positions block by block for every mode: text (`generate`),
image understanding, text-to-image (normal and thinking), editing and inpainting. A mode only chooses the prompts of its guidance
branches, a `_Guidance` (how the branch logits of a sample combine, with the optional rescale) and its logit rules
(e.g. image ids only); all branches of all samples run in one batched forward. Each step of a block reads:

1. forward (`_BlockForwarder`): the block's logits for every branch, from the exact window or SPRINT's prefix cache;
2. guidance: the branches of each sample combined, then the logit rules;
3. scheduler step (`LLaDAUniBlockScheduler`): candidates sampled, some positions committed;
4. stopping (EOS) and the callback; after the block, the streamer.

Positions that hold no mask are never changed and a block with nothing to fill is skipped, so canvases with given
positions (inpainting) and rules that vary along the canvas (a span of image ids) fit the same loop.

Interleaved decoding (`_decode_interleaved`) alternates text spans and picture spans of the engine on one sequence,
switching wherever the model writes an image header; thinking mode is its case "one picture after the reasoning", and
conversations (`conversation_llada_uni`) build on it.

Exactness: the loop reproduces the original implementation's token ids (DESIGN.md section 3). The keys/values of
finished blocks are cached, which is exact because attention is block-causal; the LM head only runs on the active
block.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from transformers.cache_utils import DynamicCache
from transformers.generation import GenerationConfig
from transformers.utils import ModelOutput
from transformers.utils import logging as hf_logging

from .image_inputs_llada_uni import IMAGE_INPUT_NAMES
from .prompting_llada_uni import (
    ALL_SPECIAL_TOKENS,
    LLaDAUniSpecialTokenIds,
    build_editing_prompts,
    build_text_to_image_prompt,
    build_text_to_image_unconditional_prompt,
    build_thinking_prompt,
    build_understanding_prompt,
    encode_text,
    get_special_token_ids,
    image_grid_size,
    image_header_ids,
    pad_sequences,
    parse_image_header,
    parse_image_inputs,
    validate_image_token_ids,
)

if TYPE_CHECKING:
    import os

    import numpy as np
    from transformers import PreTrainedConfig, PreTrainedTokenizerBase
    from transformers.generation.streamers import BaseStreamer


logger = hf_logging.get_logger(__name__)

REMASKING_STRATEGIES = ("low_confidence", "top_k_margin", "neg_entropy", "random")

# Per mode, the config field that holds its value of a shared setting; a call's keyword uses the shared name.
_MODE_FIELDS = {
    "text": {},
    "text_to_image": {"steps": "image_steps"},
    "thinking": {"steps": "thinking_steps", "gen_length": "thinking_gen_length"},
    "editing": {"steps": "edit_steps"},
}

# transformers' generation options that have no meaning in block diffusion, with their neutral value and why; a
# call or a generation config that sets one to anything else is refused rather than silently ignored.
_BEAMS = "beam search (block diffusion commits positions by confidence; there are no beams)"
_LEFT_TO_RIGHT = "a logits processor that assumes left-to-right decoding of one token per step"
_SAMPLER = "another sampler (block diffusion supports temperature, top_k and top_p)"
_UNSUPPORTED_OPTIONS = {
    "num_beams": (1, _BEAMS), "num_beam_groups": (1, _BEAMS), "diversity_penalty": (0.0, _BEAMS),
    "length_penalty": (1.0, _BEAMS), "early_stopping": (False, _BEAMS), "constraints": (None, _BEAMS),
    "force_words_ids": (None, _BEAMS),
    "repetition_penalty": (1.0, _LEFT_TO_RIGHT), "encoder_repetition_penalty": (1.0, _LEFT_TO_RIGHT),
    "no_repeat_ngram_size": (0, _LEFT_TO_RIGHT), "encoder_no_repeat_ngram_size": (0, _LEFT_TO_RIGHT),
    "bad_words_ids": (None, _LEFT_TO_RIGHT), "sequence_bias": (None, _LEFT_TO_RIGHT),
    "suppress_tokens": (None, _LEFT_TO_RIGHT), "begin_suppress_tokens": (None, _LEFT_TO_RIGHT),
    "forced_bos_token_id": (None, _LEFT_TO_RIGHT), "forced_eos_token_id": (None, _LEFT_TO_RIGHT),
    "exponential_decay_length_penalty": (None, _LEFT_TO_RIGHT), "renormalize_logits": (False, _LEFT_TO_RIGHT),
    "remove_invalid_values": (False, _LEFT_TO_RIGHT), "token_healing": (False, _LEFT_TO_RIGHT),
    "typical_p": (1.0, _SAMPLER), "epsilon_cutoff": (0.0, _SAMPLER), "eta_cutoff": (0.0, _SAMPLER),
    "min_p": (None, _SAMPLER), "top_h": (None, _SAMPLER), "penalty_alpha": (None, _SAMPLER),
    "dola_layers": (None, _SAMPLER), "watermarking_config": (None, _SAMPLER),
    "guidance_scale": (1.0, "text guidance (image modes have `cfg_scale`)"),
    "prompt_lookup_num_tokens": (None, "assisted decoding"),
    "output_attentions": (False, "per-step attentions (not kept)"),
    "output_hidden_states": (False, "per-step hidden states (not kept)"),
    "output_logits": (False, "per-step full-vocabulary logits (not kept; `output_scores` gives each position's "
                              "probability when committed)"),
    "cache_implementation": (None, "another cache (the engine keeps the exact cache of finished blocks)"),
    "max_time": (None, "a time limit"), "low_memory": (False, "beam search"),
}

# Earlier names of the SPRINT pinning switches (booleans) and the original's ratios that replace them.
_DEPRECATED_SWITCHES = {"sprint_keep_text": "text_keep_ratio", "sprint_keep_image": "image_keep_ratio"}


def _deprecated_switch(name: str, keep: bool) -> float | None:
    """The original's keep ratio meaning what the boolean `name` meant (True: never prune these tokens)."""
    new = _DEPRECATED_SWITCHES[name]
    logger.warning_once(f"`{name}` is deprecated; use the original's `{new}` (1.0 pins these tokens, < 1 lets them "
                        "be pruned, None is the original's rule).")
    if new == "text_keep_ratio":
        return None if keep else 0.0
    return 1.0 if keep else None


class LLaDAUniGenerationConfig(GenerationConfig):
    r"""
    Generation settings of LLaDA2.0-Uni's block diffusion (saved as `generation_config.json`).

    The defaults are the original implementation's signature defaults, per mode: a field named after a mode
    (`image_steps`, `edit_steps`, `thinking_steps`, `thinking_gen_length`) is that mode's value of the shared setting,
    and the mode methods' keyword of the same shared name (`steps=`, `gen_length=`) overrides it for one call.
    Faster settings (e.g. text-to-image `image_steps=8`, `cfg_scale=2.0`) are recommendations in the README.

    Args:
        block_length (`int`, defaults to 32): tokens per block; blocks are aligned to position 0 of the sequence.
        steps (`int`, defaults to 32): denoising iterations per block of text generation and understanding (at most;
            capped by `gen_length // minimal_topk`).
        gen_length (`int`, defaults to 2048): tokens that text generation and understanding generate when neither
            `max_new_tokens` nor `max_length` (transformers' settings, which take precedence) is set; a call's
            `gen_length=` keyword (the original's name) is `max_new_tokens`. Image modes generate `h * w` codes.
        image_steps (`int`, defaults to 16): `steps` of text-to-image (`generate_image`, also after thinking).
        image_h, image_w (`int`, defaults to 1024): requested picture size of `generate_image` in pixels.
        edit_steps (`int`, defaults to 8): `steps` of `edit_image`.
        thinking_steps (`int`, defaults to 32), thinking_gen_length (`int`, defaults to 4096): `steps` and
            `gen_length` of thinking mode's reasoning phase.
        threshold (`float`, defaults to 0.95): positions whose top probability exceeds it are committed together.
        minimal_topk (`int`, defaults to 1): fewest positions committed per step.
        eos_early_stop (`bool`, defaults to `True`): stop a sample once it committed EOS with nothing masked before it.
        remasking_strategy (`str`, defaults to `"low_confidence"`): score that ranks positions for commitment, one of
            `low_confidence` (probability of the chosen token), `top_k_margin` (p1 - p2), `neg_entropy`
            (1 - H / log V) and `random`.
        temperature (`float`, defaults to 0): 0 is greedy; above 0 samples after `top_k` / `top_p` filtering.
        cfg_scale (`float`, defaults to 4.0): text-to-image guidance scale; guidance is off at exactly 1.0.
        cfg_text_scale, cfg_image_scale (`float`, defaults to 4.0 and 0.0): editing guidance scales; guidance is off
            when both are 0.
        guidance_rescale (`float`, defaults to 0.7): weight of the std-rescaled guided logits (0 disables the rescale).
        use_cache (`bool`, defaults to `True`): reuse the keys/values of finished blocks (exact).
        use_sprint (`bool`, defaults to `False`): SPRINT acceleration (the original's): after `cache_warmup_steps`
            full forwards per block, later steps run the block alone against a cache of the prefix pruned to
            `keep_ratio` of it, and commit with the adaptive rule `k = clamp(ceil(masked / steps_left), minimal_topk,
            masked)` plus every position above `threshold`. Applies to every mode, thinking included, except
            three-branch editing guidance.
        keep_ratio (`float`, defaults to 0.7): the pruned cache keeps `max(1, int(prefix_len * keep_ratio))` prefix
            tokens (`prefix_len` counts every canvas column before the block, left padding of shorter guidance
            branches included), never fewer than the pinned ones; 1.0 keeps the exact prefix.
        cache_warmup_steps (`int`, defaults to 2): full forwards per block before the cache is used; the last of them
            builds it.
        confidence_alpha (`float`, defaults to 0.5): importance of a prefix token is `alpha * key_norm + (1 - alpha) *
            confidence`, the key norm (averaged over heads) divided by its mean over the prefix and the confidence
            the top softmax probability of the branch's own unguided logits at that position. As in the original, a
            pinned token scores +inf before that division, so once any token is pinned the others rank by
            confidence alone.
        text_keep_ratio, image_keep_ratio (`float`, *optional*): the original's switches for which tokens are pinned
            (never pruned): text ids are pinned unless `text_keep_ratio` is given and below 1; image ids are pinned
            only when `image_keep_ratio` is given and at least 1.
        sprint_attend_padding (`bool`, defaults to `True`): like the original, SPRINT's cached steps let the block see
            the left padding of shorter guidance branches; `False` leaves it out of the pruned cache.
        mask_token_id (`int`, *optional*): `<|mask|>`; read from the model config or the tokenizer when unset.
        show_progress_bar (`bool`, defaults to `True`): tqdm bar over blocks (also silenced by
            `transformers.utils.logging.disable_progress_bar()` or a verbosity above WARNING).
    """

    def __init__(
        self,
        block_length: int = 32,
        steps: int = 32,
        gen_length: int = 2048,
        image_steps: int = 16,
        image_h: int = 1024,
        image_w: int = 1024,
        edit_steps: int = 8,
        thinking_steps: int = 32,
        thinking_gen_length: int = 4096,
        threshold: float = 0.95,
        minimal_topk: int = 1,
        eos_early_stop: bool = True,
        remasking_strategy: str = "low_confidence",
        cfg_scale: float = 4.0,
        cfg_text_scale: float = 4.0,
        cfg_image_scale: float = 0.0,
        guidance_rescale: float = 0.7,
        use_sprint: bool = False,
        keep_ratio: float = 0.7,
        cache_warmup_steps: int = 2,
        confidence_alpha: float = 0.5,
        text_keep_ratio: float | None = None,
        image_keep_ratio: float | None = None,
        sprint_attend_padding: bool = True,
        mask_token_id: int | None = None,
        show_progress_bar: bool = True,
        **kwargs: Any,
    ):
        kwargs.setdefault("use_cache", True)
        for old, new in _DEPRECATED_SWITCHES.items():
            if old in kwargs:
                value = _deprecated_switch(old, kwargs.pop(old))
                text_keep_ratio, image_keep_ratio = (
                    (value, image_keep_ratio) if new == "text_keep_ratio" else (text_keep_ratio, value)
                )
        self.block_length = block_length
        self.steps = steps
        self.gen_length = gen_length
        self.image_steps = image_steps
        self.image_h = image_h
        self.image_w = image_w
        self.edit_steps = edit_steps
        self.thinking_steps = thinking_steps
        self.thinking_gen_length = thinking_gen_length
        self.threshold = threshold
        self.minimal_topk = minimal_topk
        self.eos_early_stop = eos_early_stop
        self.remasking_strategy = remasking_strategy
        self.cfg_scale = cfg_scale
        self.cfg_text_scale = cfg_text_scale
        self.cfg_image_scale = cfg_image_scale
        self.guidance_rescale = guidance_rescale
        self.use_sprint = use_sprint
        self.keep_ratio = keep_ratio
        self.cache_warmup_steps = cache_warmup_steps
        self.confidence_alpha = confidence_alpha
        self.text_keep_ratio = text_keep_ratio
        self.image_keep_ratio = image_keep_ratio
        self.sprint_attend_padding = sprint_attend_padding
        self.mask_token_id = mask_token_id
        self.show_progress_bar = show_progress_bar
        super().__init__(**kwargs)

    @classmethod
    def from_model_config(cls, model_config: PreTrainedConfig | dict) -> "LLaDAUniGenerationConfig":
        # The parent compares every attribute against a plain `GenerationConfig()`, which lacks the diffusion
        # fields: derive the generic part there and take the diffusion fields the model config carries.
        base = GenerationConfig.from_model_config(model_config).to_dict()
        base.pop("_from_model_config", None)
        # The model config's `use_cache` (false in the release) is about autoregressive caching; the cache of
        # finished blocks is exact, so diffusion decoding keeps it on.
        base.pop("use_cache", None)
        config = cls(**base)
        source = model_config if isinstance(model_config, dict) else model_config.to_dict()
        for name in ("block_length", "mask_token_id"):
            if source.get(name) is not None:
                setattr(config, name, source[name])
        config._from_model_config = True
        config._original_object_hash = hash(config)
        return config

    def validate(self, strict: bool = False, user_set_attributes: set[str] | None = None) -> None:
        super().validate(strict=strict, user_set_attributes=user_set_attributes)
        # `validate` also runs inside `GenerationConfig.__init__`, before the subclass fields exist in some paths.
        if not hasattr(self, "show_progress_bar"):
            return
        self.validate_diffusion()

    def validate_diffusion(self) -> None:
        """Raise a ValueError naming the first invalid diffusion setting and what is allowed."""

        def positive_int(name):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")

        for name in ("block_length", "steps", "gen_length", "image_steps", "image_h", "image_w", "edit_steps",
                     "thinking_steps", "thinking_gen_length", "minimal_topk", "cache_warmup_steps"):
            positive_int(name)
        for name in ("max_new_tokens", "max_length", "num_return_sequences"):
            if getattr(self, name, None) is not None:
                positive_int(name)
        for name in ("min_new_tokens", "min_length"):
            value = getattr(self, name, None)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                raise ValueError(f"`{name}` must be a non-negative integer, got {value!r}.")
        stops = getattr(self, "stop_strings", None)
        if stops is not None and not (isinstance(stops, str) or (
                isinstance(stops, (list, tuple)) and stops and all(isinstance(t, str) and t for t in stops))):
            raise ValueError(f"`stop_strings` must be a string or a list of non-empty strings, got {stops!r}.")
        if self.remasking_strategy not in REMASKING_STRATEGIES:
            raise ValueError(
                f"`remasking_strategy` must be one of {REMASKING_STRATEGIES}, got {self.remasking_strategy!r}."
            )
        if not isinstance(self.threshold, (int, float)) or isinstance(self.threshold, bool):
            raise ValueError(f"`threshold` must be a number, got {self.threshold!r}.")
        if not isinstance(self.keep_ratio, (int, float)) or not 0.0 < self.keep_ratio <= 1.0:
            raise ValueError(f"`keep_ratio` must be in (0, 1], got {self.keep_ratio!r}.")
        if not isinstance(self.confidence_alpha, (int, float)) or not 0.0 <= self.confidence_alpha <= 1.0:
            raise ValueError(f"`confidence_alpha` must be in [0, 1], got {self.confidence_alpha!r}.")
        for name in ("text_keep_ratio", "image_keep_ratio"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0):
                raise ValueError(f"`{name}` must be None or a number >= 0, got {value!r}.")
        if self.temperature is not None and self.temperature < 0:
            raise ValueError(f"`temperature` must be >= 0, got {self.temperature!r}.")
        if not isinstance(self.guidance_rescale, (int, float)) or not 0.0 <= self.guidance_rescale <= 1.0:
            raise ValueError(f"`guidance_rescale` must be in [0, 1], got {self.guidance_rescale!r}.")


@dataclass
class LLaDAUniGenerateOutput(ModelOutput):
    """Output of [`~LLaDAUniGenerationMixin.generate`] with `return_dict_in_generate=True`.

    Args:
        sequences (`torch.LongTensor` of shape `(batch, length)`): prompt (left-padded with `pad_token_id`) followed
            by the generated tokens, cut after the first EOS and right-padded with `pad_token_id`.
        num_forward_passes (`int`): model forwards (NFE); guidance branches share one forward.
        scores (`torch.FloatTensor` of shape `(batch, new_tokens)`, *optional*): with `output_scores=True`, the
            probability each generated token had when it was committed (the per-step confidence; the full
            vocabulary of every step is not kept). Aligned with `sequences[:, prompt_length:]`.
        commit_steps (`torch.LongTensor` of shape `(batch, new_tokens)`, *optional*): with `output_scores=True`, the
            forward (0-based) whose step committed each token; -1 on padding.
        sprint_prunes (`list[list[dict]]`, *optional*): per row, SPRINT's prefix-cache prunings (see
            [`LLaDAUniImageGenerationOutput`]).
        sprint_cached_forwards (`list[int]`, *optional*): per row, forwards against SPRINT's cache.
    """

    sequences: torch.LongTensor | None = None
    num_forward_passes: int | None = None
    scores: torch.FloatTensor | None = None
    commit_steps: torch.LongTensor | None = None
    sprint_prunes: list | None = None
    sprint_cached_forwards: list | None = None


@dataclass
class LLaDAUniImageGenerationOutput(ModelOutput):
    """Result of `generate_image` / `edit_image`.

    Args:
        token_ids (`torch.LongTensor` of shape `(h * w,)`): image codes in raster order, WITHOUT `image_token_offset`.
        h, w (`int`): code grid.
        thinking (`str`, *optional*): the reasoning text written in thinking mode.
        sequences (`torch.LongTensor`): the conditional branch's prompt followed by the generated ids.
        num_forward_passes (`int`): model forwards (NFE) of this call.
        scores (`torch.FloatTensor` of shape `(1, generated)`, *optional*): with `output_scores=True`, the
            probability each generated token had when it was committed.
        commit_steps (`torch.LongTensor` of shape `(1, generated)`, *optional*): with `output_scores=True`, the
            forward (0-based, counted over the decode) whose step committed each token.
        sprint_prunes (`list[dict]`, *optional*): with SPRINT, every pruning of the prefix cache, in order, one dict
            per guidance branch: `branch`, `prefix_len` (canvas columns before the block), `kept`, and how many prefix
            ids are `text_tokens` / `image_tokens`.
        sprint_cached_forwards (`int`, *optional*): with SPRINT, forwards that ran against its prefix cache, counted
            per guidance branch (as the original counts them).
    """

    token_ids: torch.LongTensor | None = None
    h: int | None = None
    w: int | None = None
    thinking: str | None = None
    sequences: torch.LongTensor | None = None
    num_forward_passes: int | None = None
    scores: torch.FloatTensor | None = None
    commit_steps: torch.LongTensor | None = None
    sprint_prunes: list | None = None
    sprint_cached_forwards: int | None = None


@dataclass
class LLaDAUniUnderstandingOutput(ModelOutput):
    """Result of `understand_image(..., return_dict=True)`.

    Args:
        text (`str`): decoded from the question onwards, special tokens skipped (the original's return value).
        sequences (`torch.LongTensor` of shape `(1, length)`): prompt + generated ids, cut after the first EOS.
        num_forward_passes (`int`): model forwards (NFE).
        scores, commit_steps, sprint_prunes, sprint_cached_forwards: as in [`LLaDAUniImageGenerationOutput`].
    """

    text: str | None = None
    sequences: torch.LongTensor | None = None
    num_forward_passes: int | None = None
    scores: torch.FloatTensor | None = None
    commit_steps: torch.LongTensor | None = None
    sprint_prunes: list | None = None
    sprint_cached_forwards: int | None = None


class _Guidance:
    """How the logits of a sample's guidance branches combine into the logits that are decoded.

    `kind` is `"none"` (one branch), `"cfg"` (conditional, unconditional: `Lu + s (Lc - Lu)`) or `"edit"` (full,
    no-text[, no-image]: `Lnt + st (Lf - Lnt) + si (Lnt - Lni)`). Guided logits are rescaled towards the std of the
    first branch (`rescale * r + (1 - rescale) * L` with `r = L * std(L0) / (std(L) + 1e-6)`, torch's unbiased std
    over the vocabulary). Restricting the vocabulary (image codes only) is a separate rule applied afterwards.
    """

    def __init__(self, kind="none", scale=1.0, text_scale=0.0, image_scale=0.0, rescale=0.0):
        self.kind = kind
        self.scale = scale
        self.text_scale = text_scale
        self.image_scale = image_scale
        self.rescale = rescale
        if kind == "none":
            self.num_branches = 1
        elif kind == "cfg":
            self.num_branches = 2
        elif kind == "edit":
            # A zero image scale adds exactly 0 * (Lnt - Lni): the no-image branch need not be computed at all.
            self.num_branches = 3 if image_scale != 0 else 2
        else:
            raise ValueError(f"Unknown guidance kind {kind!r}.")

    @classmethod
    def text_to_image(cls, cfg_scale, rescale):
        # The original turns guidance off at exactly 1.0 (where it would be the identity anyway).
        if cfg_scale == 1.0:
            return cls("none")
        return cls("cfg", scale=cfg_scale, rescale=rescale)

    @classmethod
    def editing(cls, text_scale, image_scale, rescale):
        if not (text_scale > 0 or image_scale > 0):
            return cls("none")
        return cls("edit", text_scale=text_scale, image_scale=image_scale, rescale=rescale)

    @property
    def guided(self) -> bool:
        return self.kind != "none"

    @property
    def branch_names(self) -> tuple[str, ...]:
        names = {"none": ("conditional",), "cfg": ("conditional", "unconditional"),
                 "edit": ("full", "no_text", "no_image")}[self.kind]
        return names[: self.num_branches]

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        """`logits`: `(samples, branches, positions, vocab)` -> `(samples, positions, vocab)`."""
        if self.kind == "none":
            return logits[:, 0]
        if self.kind == "cfg":
            cond, uncond = logits[:, 0], logits[:, 1]
            guided = uncond + self.scale * (cond - uncond)
        else:
            full, no_text = logits[:, 0], logits[:, 1]
            guided = no_text + self.text_scale * (full - no_text)
            if self.num_branches == 3:
                guided = guided + self.image_scale * (no_text - logits[:, 2])
        if self.rescale:
            reference = logits[:, 0]
            rescaled = guided * (reference.std(dim=-1, keepdim=True) / (guided.std(dim=-1, keepdim=True) + 1e-6))
            guided = self.rescale * rescaled + (1 - self.rescale) * guided
        return guided


class _AllowedIds:
    """A logit rule: every id outside `[low, high)` gets -inf (images: text ids excluded), at every position.

    Logit rules run after guidance, on the block's `(samples, block_length, vocab)` logits, with `positions`
    (`(samples, block_length)`): each column's index in its sample's generated region (negative on prompt columns).
    A rule that varies along the output (a span switching from text to image ids) reads them.
    """

    def __init__(self, low: int, high: int):
        self.low, self.high = low, high

    def __call__(self, logits: torch.Tensor, positions: torch.LongTensor) -> torch.Tensor:
        logits = logits.clone()
        logits[..., : self.low] = float("-inf")
        logits[..., self.high :] = float("-inf")
        return logits


class _NoStopBefore:
    """A logit rule: the stop ids get -inf at the first `count` generated positions (`min_new_tokens`)."""

    def __init__(self, stop_ids: Sequence[int], count: int):
        self.stop_ids, self.count = list(stop_ids), count

    def __call__(self, logits: torch.Tensor, positions: torch.LongTensor) -> torch.Tensor:
        early = (positions < self.count)[..., None]
        blocked = torch.zeros(logits.shape[-1], dtype=torch.bool, device=logits.device)
        blocked[self.stop_ids] = True
        return logits.masked_fill(early & blocked, float("-inf"))


class _StopStrings:
    """transformers' `stop_strings` for block diffusion: a sample stops once the text of its filled prefix (the
    generated ids before the first mask) holds one of `strings`; its output ends with the token that completes it."""

    def __init__(self, tokenizer, strings: Sequence[str], num_samples: int):
        self.tokenizer = tokenizer
        self.strings = [strings] if isinstance(strings, str) else list(strings)
        self.checked = [0] * num_samples  # per sample: a prefix length known to hold no stop string

    def _holds(self, ids: list[int]) -> bool:
        text = self.tokenizer.decode(ids)
        return any(string in text for string in self.strings)

    def find(self, sample: int, prefix: list[int]) -> int | None:
        """The number of tokens up to the end of the first stop string in `prefix`, or None."""
        if len(prefix) <= self.checked[sample]:
            return None
        if not self._holds(prefix):
            self.checked[sample] = len(prefix)
            return None
        low, high = self.checked[sample] + 1, len(prefix)  # the shortest prefix that holds one
        while low < high:
            middle = (low + high) // 2
            if self._holds(prefix[:middle]):
                high = middle
            else:
                low = middle + 1
        return low


@dataclass
class _Layout:
    """Samples and their guidance branches laid out on one canvas of whole blocks.

    Row `s * G + g` holds branch `g` of sample `s`. Branches of a sample are left-padded to the sample's longest
    branch (pad columns are masked out; positions start at 0 on the first real token), and samples are left-padded
    by whole blocks so that every block boundary of every sample stays where a one-sample run puts it.
    """

    x: torch.LongTensor  # (rows, T)
    row_start: torch.LongTensor  # (rows,) first real column of each row
    sample_start: torch.LongTensor  # (rows,) first column of the row's sample (after the whole-block padding)
    gen_start: torch.LongTensor  # (samples,) first generated column
    num_branches: int
    block_length: int
    gen_length: int

    @property
    def num_samples(self) -> int:
        return self.gen_start.shape[0]

    @classmethod
    def build(cls, branch_prompts, gen_length, block_length, mask_token_id, device, canvas=None):
        """`canvas` (*optional*, `(samples, gen_length)` ids): the generated region's starting ids, the mask id where
        a position is to be generated and a given id elsewhere (inpainting: the source codes outside the mask).
        Without it every generated position starts masked."""
        num_branches = len(branch_prompts[0])
        lengths = [max(len(p) for p in branches) for branches in branch_prompts]
        num_blocks = [(length + gen_length + block_length - 1) // block_length for length in lengths]
        total = max(num_blocks) * block_length
        rows = len(branch_prompts) * num_branches
        x = torch.full((rows, total), mask_token_id, dtype=torch.long)
        row_start = torch.empty(rows, dtype=torch.long)
        sample_start = torch.empty(rows, dtype=torch.long)
        gen_start = torch.empty(len(branch_prompts), dtype=torch.long)
        for s, branches in enumerate(branch_prompts):
            if len(branches) != num_branches:
                raise ValueError("Every sample needs the same number of guidance branches.")
            pad = total - num_blocks[s] * block_length
            end = pad + lengths[s]
            gen_start[s] = end
            for g, prompt in enumerate(branches):
                r = s * num_branches + g
                x[r, end - len(prompt) : end] = torch.tensor(prompt, dtype=torch.long)
                row_start[r] = end - len(prompt)
                sample_start[r] = pad
            if canvas is not None:
                # Pinned cells: given ids are never rewritten. The tail of the last block past `gen_length` stays
                # masked (denoised and cut off, as without a canvas) only when that block has cells to generate;
                # otherwise it is filled too, so the block needs no forward at all.
                rows = slice(s * num_branches, (s + 1) * num_branches)
                given = torch.as_tensor(canvas[s], dtype=torch.long)
                x[rows, end : end + gen_length] = given
                last_block = max(end, (end + gen_length - 1) // block_length * block_length)
                if not (x[s * num_branches, last_block : end + gen_length] == mask_token_id).any():
                    x[rows, end + gen_length :] = given[-1]
        return cls(
            x=x.to(device),
            row_start=row_start.to(device),
            sample_start=sample_start.to(device),
            gen_start=gen_start.to(device),
            num_branches=num_branches,
            block_length=block_length,
            gen_length=gen_length,
        )


def _positions(layout: _Layout, start: int, end: int) -> torch.LongTensor:
    # Left padding sits at position 0 (the original's positions start at 0 on a row's first real token).
    cols = torch.arange(start, end, device=layout.x.device)
    return (cols[None, :] - layout.row_start[:, None]).clamp(min=0)


def _block_causal_mask(key_cols: torch.LongTensor, visible_from: torch.LongTensor, query_start: int, query_end: int,
                       block_length: int) -> torch.BoolTensor:
    """`(rows, 1, queries, keys)` boolean mask: a query sees keys of its own and earlier blocks at columns
    `>= visible_from[row]`; `key_cols` (`(rows, keys)`) are the canvas columns of the keys.
    A query that sees nothing (padding filling whole blocks) gets a zero attention output from the model, as in the
    original; SPRINT's cached steps read the keys such rows produce."""
    device = key_cols.device
    query_cols = torch.arange(query_start, query_end, device=device)
    allowed = (key_cols[:, None, :] // block_length) <= (query_cols[None, :, None] // block_length)
    allowed &= key_cols[:, None, :] >= visible_from[:, None, None]
    return allowed[:, None]


def sprint_importance(keys: torch.Tensor, pinned: torch.BoolTensor, visible: torch.BoolTensor,
                      confidence: torch.Tensor | None, alpha: float) -> torch.Tensor:
    """SPRINT's importance of every prefix token (the original's `_sprint_prune_cache`); `topk` of it is kept.

    Args:
        keys (`torch.Tensor` of shape `(rows, kv_heads, prefix, head_dim)`): one layer's cached keys.
        pinned (`torch.BoolTensor` of shape `(rows, prefix)`): tokens that must be kept.
        visible (`torch.BoolTensor` of shape `(rows, prefix)`): the row's prefix (False: not a candidate).
        confidence (`torch.Tensor` of shape `(rows, prefix)`, *optional*): top softmax probability of the row's own
            logits at each position (unused when `alpha` is 1).
        alpha (`float`): weight of the key norm (the key norm averaged over heads, divided by its mean over the
            prefix); `1 - alpha` weighs the confidence.

    Returns:
        `torch.Tensor` of shape `(rows, prefix)`: -inf outside `visible`. Pinned tokens are +inf before the
        division by the mean, as in the original: once a row pins any token its mean is +inf, its unpinned norm terms
        are 0 and its pinned ones NaN, which `torch.topk` ranks first; unpinned tokens then rank by confidence alone.
    """
    norm = keys.float().norm(dim=-1).mean(dim=1)
    norm = norm.masked_fill(pinned, float("inf")).masked_fill(~visible, 0.0)
    norm = norm / (norm.sum(dim=1, keepdim=True) / visible.sum(dim=1, keepdim=True))
    score = alpha * norm
    if confidence is not None and alpha < 1:
        score = score + (1 - alpha) * confidence
    return score.masked_fill(~visible, float("-inf"))


# ----------------------------------------------------------------------------------------------------- scheduler
@dataclass
class LLaDAUniBlockSchedulerOutput(ModelOutput):
    """One step of [`LLaDAUniBlockScheduler`] on a block (all tensors `(samples, block_length)`).

    Args:
        prev_sample (`torch.LongTensor`): the block after this step.
        transfer_index (`torch.BoolTensor`): the positions committed at this step.
        sampled_tokens (`torch.LongTensor`): the candidate token at every position.
        sampled_probs (`torch.FloatTensor`): its probability (what `threshold` is compared with).
        scores (`torch.FloatTensor`): the remasking score that ranks positions for commitment.
    """

    prev_sample: torch.LongTensor | None = None
    transfer_index: torch.BoolTensor | None = None
    sampled_tokens: torch.LongTensor | None = None
    sampled_probs: torch.FloatTensor | None = None
    scores: torch.FloatTensor | None = None


class LLaDAUniBlockScheduler:
    r"""
    The commit policy of block diffusion, in the spirit of diffusers' `BlockRefinementScheduler`: at every step of a
    block, [`~LLaDAUniBlockScheduler.step`] samples a candidate token for every position and commits some of the
    positions still to fill.

    - Candidates: the argmax at `temperature` 0 (its probability from the float32 softmax), else a sample after
      `top_k` / `top_p` filtering. Positions are ranked by the `remasking_strategy` score: `low_confidence` (the
      candidate's probability), `top_k_margin` (p1 - p2), `neg_entropy` (1 - H / log V) or `random`.
    - Plain rule (the original's `generate_bd`): step `i` commits `transfer_schedule[i]` positions (`block_length`
      spread over the steps, the first `block_length % steps` steps one more); if at least that many have a
      probability above `threshold` all of those are committed instead.
    - Adaptive rule (SPRINT, `adaptive=True`): `k = clamp(ceil(to_fill / steps_left), minimal_topk, to_fill)` best
      ranked positions, and every position above `threshold`.

    Args:
        block_length (`int`): tokens per block.
        num_inference_steps (`int`): steps per block (at most).
        threshold (`float`), minimal_topk (`int`), remasking_strategy (`str`), temperature (`float`), top_k
        (`int`, *optional*), top_p (`float`, *optional*): see [`LLaDAUniGenerationConfig`].
        adaptive (`bool`): SPRINT's commit rule instead of the plain one.
    """

    def __init__(self, block_length: int = 32, num_inference_steps: int = 32, threshold: float = 0.95,
                 minimal_topk: int = 1, remasking_strategy: str = "low_confidence", temperature: float = 0.0,
                 top_k: int | None = None, top_p: float | None = None, adaptive: bool = False):
        self.block_length = block_length
        self.num_inference_steps = num_inference_steps
        self.threshold = threshold
        self.minimal_topk = minimal_topk
        self.remasking_strategy = remasking_strategy
        self.temperature = temperature or 0.0
        self.top_k = top_k
        self.top_p = top_p
        self.adaptive = adaptive
        base, extra = divmod(block_length, num_inference_steps)
        self.transfer_schedule = [base + 1 if i < extra else base for i in range(num_inference_steps)]

    @classmethod
    def from_generation_config(cls, config: LLaDAUniGenerationConfig, gen_length: int,
                               adaptive: bool = False) -> "LLaDAUniBlockScheduler":
        """The scheduler of one decode; `steps` is capped at `gen_length // minimal_topk`, as in the original."""
        steps = min(config.steps, gen_length // config.minimal_topk)
        if steps <= 0:
            raise ValueError(f"`gen_length` ({gen_length}) must be at least `minimal_topk` ({config.minimal_topk}).")
        return cls(block_length=config.block_length, num_inference_steps=steps, threshold=config.threshold,
                   minimal_topk=config.minimal_topk, remasking_strategy=config.remasking_strategy,
                   temperature=config.temperature, top_k=config.top_k, top_p=config.top_p, adaptive=adaptive)

    def sample(
        self, logits: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.LongTensor, torch.Tensor, torch.Tensor]:
        """Candidate token, its probability and the remasking score per position (`logits`: `(..., vocab)`)."""
        if self.temperature > 0:
            logits = logits / self.temperature if self.temperature != 1.0 else logits
            logits = _filter_top_p(_filter_top_k(logits, self.top_k), self.top_p)
            probs = logits.float().softmax(dim=-1)
            flat = probs.reshape(-1, probs.shape[-1])
            tokens = torch.multinomial(flat, 1, generator=generator).view(probs.shape[:-1])
        else:
            probs = logits.float().softmax(dim=-1)
            tokens = logits.argmax(dim=-1)
        token_probs = probs.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
        strategy = self.remasking_strategy
        if strategy == "low_confidence":
            score = token_probs
        elif strategy == "top_k_margin":
            top2 = probs.topk(2, dim=-1).values
            score = top2[..., 0] - top2[..., 1]
        elif strategy == "neg_entropy":
            entropy = -torch.special.xlogy(probs, probs).sum(dim=-1)
            support = torch.isfinite(logits).sum(dim=-1).clamp(min=2).float()
            score = 1.0 - entropy / support.log()
        else:
            score = torch.rand(token_probs.shape, generator=generator, device=token_probs.device)
        return tokens, token_probs, score

    def _select(self, step_index: int, to_fill: torch.BoolTensor, probs: torch.Tensor,
                score: torch.Tensor) -> torch.BoolTensor:
        """The positions of one sample's block to commit (all arguments `(block_length,)`)."""
        num_to_fill = int(to_fill.sum())
        confident = to_fill & (probs > self.threshold)
        ranked = torch.where(to_fill, score, torch.full_like(score, float("-inf")))
        transfer = torch.zeros_like(to_fill)
        if self.adaptive:
            steps_left = self.num_inference_steps - step_index
            k = num_to_fill if steps_left <= 0 else math.ceil(num_to_fill / steps_left)
            k = min(max(k, self.minimal_topk), num_to_fill)
            transfer[torch.topk(ranked, k).indices] = True
            return transfer | confident
        wanted = (self.transfer_schedule[step_index] if step_index < len(self.transfer_schedule) else num_to_fill)
        if int(confident.sum()) >= wanted:
            return confident
        k = min(wanted, num_to_fill)
        if k > 0:
            transfer[torch.topk(ranked, k).indices] = True
        return transfer

    def step(self, model_output: torch.Tensor, timestep: int, sample: torch.LongTensor,
             to_fill: torch.BoolTensor, generator: torch.Generator | None = None) -> LLaDAUniBlockSchedulerOutput:
        """One refinement step of a block.

        Args:
            model_output (`torch.Tensor` of shape `(samples, block_length, vocab)`): the guided block logits.
            timestep (`int`): the step index within the block (0 first).
            sample (`torch.LongTensor` of shape `(samples, block_length)`): the block's current ids.
            to_fill (`torch.BoolTensor` of shape `(samples, block_length)`): positions that may be committed (masked
                and generated; given positions, e.g. a prompt's, stay False and are never changed).
            generator (`torch.Generator`, *optional*): randomness for sampling and the `random` strategy.
        """
        tokens, probs, scores = self.sample(model_output, generator)
        transfer = torch.zeros_like(to_fill)
        for s in torch.nonzero(to_fill.any(dim=1)).flatten().tolist():
            transfer[s] = self._select(timestep, to_fill[s], probs[s], scores[s])
        return LLaDAUniBlockSchedulerOutput(
            prev_sample=torch.where(transfer, tokens, sample), transfer_index=transfer, sampled_tokens=tokens,
            sampled_probs=probs, scores=scores,
        )


def _filter_top_k(logits, top_k):
    if not top_k or top_k >= logits.shape[-1]:
        return logits
    kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def _filter_top_p(logits, top_p):
    if top_p is None or top_p >= 1.0:
        return logits
    sorted_logits, sorted_idx = torch.sort(logits, descending=True, dim=-1)
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    remove = cumulative > top_p
    remove[..., 1:] = remove[..., :-1].clone()
    remove[..., 0] = False
    return logits.masked_fill(remove.scatter(-1, sorted_idx, remove), float("-inf"))


# ----------------------------------------------------------------------------------------------------- forwards
class _BlockForwarder:
    """The model forwards of one decode: the active block's logits for every row of the canvas.

    Exact: the window up to the block's end under the block-causal mask; with `use_cache` the keys/values of finished
    blocks are reused (exact under block-causal attention) and only the columns the cache lacks are run. SPRINT: the
    first `cache_warmup_steps` steps of a block are exact forwards, the last of them also builds SPRINT's prefix cache
    (pruned to `keep_ratio`, the original's `_sprint_prune_cache`), and later steps run the block alone against it.
    """

    # Prefix positions whose top probability is computed per LM-head call (bounds the float32 logits held at once).
    CONFIDENCE_CHUNK = 64

    def __init__(self, model, layout: _Layout, config: LLaDAUniGenerationConfig, use_sprint: bool,
                 image_token_offset: int, branch_names: Sequence[str], past_key_values: DynamicCache | None = None):
        self.model = model
        self.layout = layout
        self.config = config
        self.use_sprint = use_sprint
        self.image_token_offset = image_token_offset
        self.branch_names = branch_names
        self.nfe = 0
        self.exact_cache = DynamicCache(config=model.config) if config.use_cache else None
        # A cache seeded with the keys/values of finished blocks of an earlier decode of the same prefix (whole blocks
        # from column 0; see `LLaDAUniPrefixCache`): exact for the same reason as above.
        if past_key_values is not None and config.use_cache:
            self.exact_cache = past_key_values
        self.block_start = self.block_end = 0
        self.sprint_cache = None
        # SPRINT's record, per sample: every pruning of the prefix cache, and forwards run against it (counted per
        # guidance branch, as the original counts them).
        self.sprint_prunes = [[] for _ in range(layout.num_samples)]
        self.sprint_cached_forwards = [0] * layout.num_samples
        # Pruning ranks prefix tokens by the top probability of their branch's own logits: kept per canvas column,
        # computed once, when a forward first runs a column whose content is final.
        self.prunes = use_sprint and config.keep_ratio < 1.0
        self.prefix_confidence = None
        self.confidence_filled = 0
        if self.prunes and config.confidence_alpha < 1.0:
            self.prefix_confidence = torch.zeros(layout.x.shape, device=layout.x.device)

    def start_block(self, block_start: int, block_end: int):
        self.block_start, self.block_end = block_start, block_end
        self.sprint_cache = None

    def __call__(self, step: int, active: torch.BoolTensor) -> torch.Tensor:
        """`(rows, block_length, vocab)` float32 logits of the active block at this step."""
        warm_step = self.config.cache_warmup_steps - 1
        if self.use_sprint and step > warm_step and self.sprint_cache is not None:
            return self._sprint_forward(active)
        building = self.use_sprint and step == warm_step
        cache = self.exact_cache
        if building and cache is None:
            cache = DynamicCache(config=self.model.config)
        logits = self._exact_forward(cache)
        if building:
            self.sprint_cache = self._build_sprint_cache(cache, active)
        return logits

    def _run_model(self, start, end, cache, mask, final_upto=0):
        """Block logits of a forward over columns `[start, end)`; records the prefix confidence of the columns in
        `[start, final_upto)` that have none yet."""
        layout = self.layout
        hidden = self.model.get_decoder()(
            input_ids=layout.x[:, start:end],
            attention_mask=mask,
            position_ids=_positions(layout, start, end),
            cache=cache,
            use_cache=cache is not None,
        ).last_hidden_state
        self.nfe += 1
        head = self.model.get_output_embeddings()
        if self.prefix_confidence is not None and final_upto > self.confidence_filled:
            for low in range(self.confidence_filled, final_upto, self.CONFIDENCE_CHUNK):
                high = min(low + self.CONFIDENCE_CHUNK, final_upto)
                probs = head(hidden[:, low - start : high - start]).float().softmax(dim=-1)
                self.prefix_confidence[:, low:high] = probs.amax(dim=-1)
            self.confidence_filled = final_upto
        # The LM head runs on the active block only (the `logits_to_keep` rule).
        return head(hidden[:, -layout.block_length :]).float()

    def _exact_forward(self, cache):
        """Block logits under the exact block-causal mask. With a cache, only the columns it lacks are run, then it
        is cropped back to the block's start (the finished blocks)."""
        layout, block_start, block_end = self.layout, self.block_start, self.block_end
        start = cache.get_seq_length() if cache is not None else 0
        keys = torch.arange(block_end, device=layout.x.device).expand(layout.x.shape[0], -1)
        mask = _block_causal_mask(keys, layout.row_start, start, block_end, layout.block_length)
        logits = self._run_model(start, block_end, cache, mask, final_upto=block_start)
        if cache is not None:
            cache.crop(block_start - cache.get_seq_length())
        return logits

    def _sprint_forward(self, active):
        """The active block alone against SPRINT's prefix cache (`(cache, prefix_visible)`, the latter `(rows,
        cached)` telling which cache slots each row sees)."""
        layout, block_start, block_end = self.layout, self.block_start, self.block_end
        cache, prefix_visible = self.sprint_cache
        block_cols = torch.arange(block_start, block_end, device=layout.x.device).expand(layout.x.shape[0], -1)
        mask = torch.cat([prefix_visible[:, None, None, :].expand(-1, 1, layout.block_length, -1),
                          _block_causal_mask(block_cols, layout.row_start, block_start, block_end,
                                             layout.block_length)], dim=-1)
        length = cache.get_seq_length()
        logits = self._run_model(block_start, block_end, cache, mask)
        cache.crop(length - cache.get_seq_length())
        for s in torch.nonzero(active).flatten().tolist():
            self.sprint_cached_forwards[s] += layout.num_branches
        return logits

    def _build_sprint_cache(self, exact_cache, active):
        """SPRINT's prefix cache for this block: the exact prefix, or, pruned (the original's
        `_sprint_prune_cache`), per layer its `keep` most important tokens per row, pinned ones first."""
        layout, config, block_start = self.layout, self.config, self.block_start
        rows, device = layout.x.shape[0], layout.x.device
        cols = torch.arange(block_start, device=device).expand(rows, -1)
        # The original's cached steps pass no valid-prefix mask: the left padding of shorter branches is seen.
        visible_from = layout.sample_start if config.sprint_attend_padding else layout.row_start
        visible = cols >= visible_from[:, None]
        if not self.prunes or block_start == 0:
            return exact_cache, visible
        ids = layout.x[:, :block_start]
        offset = self.image_token_offset
        is_text = ids < offset if offset is not None else torch.ones_like(visible)
        pinned = torch.zeros_like(visible)
        if config.text_keep_ratio is None or config.text_keep_ratio >= 1:
            pinned |= is_text
        if config.image_keep_ratio is not None and config.image_keep_ratio >= 1:
            pinned |= ~is_text
        pinned &= visible
        prefix_len = visible.sum(dim=1)
        # Python floats, as the original: `int(prefix_len * keep_ratio)` floors the exact double product.
        keep = torch.tensor([max(1, int(n * config.keep_ratio)) for n in prefix_len.tolist()], device=device)
        keep = torch.maximum(keep, pinned.sum(dim=1))
        # The branches of a sample share one cache tensor in the original: they keep as many tokens each.
        keep = keep.view(-1, layout.num_branches).amax(dim=1).repeat_interleave(layout.num_branches)
        keep = torch.minimum(keep, prefix_len)
        k = int(keep.max())
        slot_valid = torch.arange(k, device=device)[None, :] < keep[:, None]
        confidence = self.prefix_confidence[:, :block_start] if self.prefix_confidence is not None else None
        pruned = DynamicCache(config=self.model.config)
        for layer_idx, layer in enumerate(exact_cache.layers):
            keys = layer.keys[:, :, :block_start]
            values = layer.values[:, :, :block_start]
            score = sprint_importance(keys, pinned, visible, confidence, config.confidence_alpha)
            index = score.topk(k, dim=1).indices
            # Kept tokens in canvas order; slots past a row's budget go last (unseen, see `slot_valid`).
            index = torch.where(slot_valid, index, block_start).sort(dim=1).values.clamp(max=block_start - 1)
            gather = index[:, None, :, None].expand(-1, keys.shape[1], -1, keys.shape[-1])
            pruned.update(keys.gather(2, gather), values.gather(2, gather), layer_idx)
        for s in torch.nonzero(active).flatten().tolist():
            for g in range(layout.num_branches):
                r = s * layout.num_branches + g
                self.sprint_prunes[s].append({
                    "branch": self.branch_names[g],
                    "prefix_len": int(prefix_len[r]),
                    "kept": int(keep[r]),
                    "text_tokens": int((is_text[r] & visible[r]).sum()),
                    "image_tokens": int((~is_text[r] & visible[r]).sum()),
                })
        return pruned, slot_valid


# ----------------------------------------------------------------------------------------------------- the engine
class _BlockDiffusionDecoder:
    """Fills the masked tail of every row of a `_Layout`, one block at a time (see module docstring).

    Per step: forward (`_BlockForwarder`) -> guidance (`_Guidance`, then the logit rules) -> scheduler step
    (`LLaDAUniBlockScheduler`) -> stopping, callbacks and streamer.
    """

    def __init__(self, model, layout: _Layout, guidance: _Guidance, config: LLaDAUniGenerationConfig,
                 mask_token_id: int, image_token_offset: int, stop_token_ids: Sequence[int] = (),
                 logit_rules: Sequence[Callable] = (), stop_strings: _StopStrings | None = None, callback=None,
                 streamer=None, generator=None, past_key_values: DynamicCache | None = None):
        self.layout = layout
        self.stop_strings = stop_strings
        self.guidance = guidance
        self.config = config
        self.mask = mask_token_id
        self.stop_ids = torch.tensor(sorted(set(stop_token_ids)), dtype=torch.long, device=layout.x.device)
        self.logit_rules = list(logit_rules)
        self.callback = callback
        self.streamer = streamer
        self.generator = generator
        self.use_sprint = bool(config.use_sprint)
        if self.use_sprint and guidance.kind == "edit":
            logger.warning_once("SPRINT is not used with three-branch editing guidance; decoding without it.")
            self.use_sprint = False
        self.scheduler = LLaDAUniBlockScheduler.from_generation_config(config, layout.gen_length,
                                                                       adaptive=self.use_sprint)
        self.forwarder = _BlockForwarder(model, layout, config, self.use_sprint, image_token_offset,
                                         guidance.branch_names, past_key_values=past_key_values)
        self.stopped = False  # [conversations] a callback returned True

    @property
    def nfe(self) -> int:
        return self.forwarder.nfe

    def run(self, progress_bar=None):
        layout, config = self.layout, self.config
        x, bl, G, S = layout.x, layout.block_length, layout.num_branches, layout.num_samples
        device = x.device
        branch0 = torch.arange(S, device=device) * G
        first_block = layout.gen_start // bl
        gen_end = layout.gen_start + layout.gen_length
        finished = torch.zeros(S, dtype=torch.bool, device=device)
        self.cut = torch.full((S,), -1, dtype=torch.long, device=device)
        self.string_cut = torch.full((S,), -1, dtype=torch.long, device=device)
        # Per canvas column: the probability of the committed token when it was committed, and at which forward.
        self.commit_probs = torch.zeros(S, x.shape[1], device=device)
        self.commit_steps = torch.full((S, x.shape[1]), -1, dtype=torch.long, device=device)
        streamed = layout.gen_start.clone()
        stream_done = False
        if self.streamer is not None:
            self.streamer.put(x[0, layout.row_start[0] : layout.gen_start[0]].cpu())

        start_block = int(first_block.min())
        for block in range(start_block, x.shape[1] // bl):
            block_start, block_end = block * bl, (block + 1) * bl
            cols = torch.arange(block_start, block_end, device=device)
            positions = cols[None, :] - layout.gen_start[:, None]
            active = (first_block <= block) & ~finished
            if not active.any():
                if finished.all():
                    break
                continue
            self.forwarder.start_block(block_start, block_end)
            for step in itertools.count():
                # Positions to fill: masked columns of the generated region (prompt columns are never rewritten; the
                # block tail past `gen_length` is denoised like the rest, as in the original, and cut off at the end).
                block_ids = x[branch0, block_start:block_end]
                to_fill = (block_ids == self.mask) & active[:, None] & (cols[None, :] >= layout.gen_start[:, None])
                if not to_fill.any():
                    break
                # 1. forward: the block's logits for every branch of every sample
                logits = self.forwarder(step, active)
                # 2. guidance: each sample's branches combined, then the logit rules (allowed ids, ...)
                logits = self.guidance(logits.view(S, G, bl, -1))
                for rule in self.logit_rules:
                    logits = rule(logits, positions)
                # 3. scheduler step: candidates sampled, some positions committed (in every branch of the sample)
                out = self.scheduler.step(logits, step, block_ids, to_fill, generator=self.generator)
                transfer = out.transfer_index.repeat_interleave(G, dim=0)
                x[:, block_start:block_end] = torch.where(
                    transfer, out.sampled_tokens.repeat_interleave(G, dim=0), x[:, block_start:block_end]
                )
                self.commit_probs[:, block_start:block_end] = torch.where(
                    out.transfer_index, out.sampled_probs, self.commit_probs[:, block_start:block_end]
                )
                self.commit_steps[:, block_start:block_end].masked_fill_(out.transfer_index, self.nfe - 1)
                # 4. stopping and the callback
                if config.eos_early_stop and self.stop_ids.numel():
                    for s in torch.nonzero(out.transfer_index.any(dim=1)).flatten().tolist():
                        if torch.isin(out.sampled_tokens[s][out.transfer_index[s]], self.stop_ids).any():
                            self._check_stop(s, block_end)
                            if self.cut[s] >= 0:
                                finished[s] = True
                if self.stop_strings is not None:
                    for s in torch.nonzero(out.transfer_index.any(dim=1) & ~finished).flatten().tolist():
                        region = x[s * G, layout.gen_start[s] : gen_end[s]]
                        masked = (region == self.mask).nonzero()
                        prefix = region[: int(masked[0]) if len(masked) else len(region)].tolist()
                        found = self.stop_strings.find(s, prefix)
                        if found is not None:
                            self.string_cut[s] = layout.gen_start[s] + found
                            finished[s] = True
                if self.callback is not None:
                    # [conversations] A callback that returns True stops the decode (what is committed stays).
                    if self.callback(step, block - start_block, self.generated_ids()) is True:
                        self.stopped = True
                        finished[:] = True
                active &= ~finished
            # A block whose committed part holds a stop token ends the sample's generation.
            if config.eos_early_stop and self.stop_ids.numel():
                for s in torch.nonzero(active).flatten().tolist():
                    region = x[s * G, layout.gen_start[s] : min(block_end, int(gen_end[s]))]
                    if torch.isin(region, self.stop_ids).any():
                        finished[s] = True
            # 5. the streamer gets the finished block
            if self.streamer is not None and not stream_done:
                upto = min(block_end, int(gen_end[0]))
                if self.cut[0] >= 0:
                    upto = min(upto, int(self.cut[0]))
                if self.string_cut[0] >= 0:
                    upto = min(upto, int(self.string_cut[0]))
                    stream_done = True
                elif self.stop_ids.numel():
                    stops = torch.isin(x[0, streamed[0] : upto], self.stop_ids).nonzero()
                    if len(stops):
                        upto = int(streamed[0]) + int(stops[0]) + 1
                        stream_done = True  # the output is cut after the first stop token
                if upto > streamed[0]:
                    self.streamer.put(x[0, int(streamed[0]) : upto].cpu())
                    streamed[0] = upto
            if progress_bar is not None:
                progress_bar.update(1)
            if finished.all():
                break
        if self.streamer is not None:
            self.streamer.end()
        return self

    def _check_stop(self, s, block_end):
        """After committing a stop token: finish the sample if everything before its first stop token is filled."""
        layout = self.layout
        row = s * layout.num_branches
        start = int(layout.gen_start[s])
        region = layout.x[row, start:block_end]
        stops = torch.isin(region, self.stop_ids).nonzero()
        if len(stops):
            first = int(stops[0])
            if not (region[:first] == self.mask).any():
                self.cut[s] = start + first + 1

    def sprint_stats(self, sample: int) -> dict:
        """SPRINT's record of one sample (empty without SPRINT), as output fields."""
        if not self.use_sprint:
            return {}
        return {"sprint_prunes": self.forwarder.sprint_prunes[sample],
                "sprint_cached_forwards": self.forwarder.sprint_cached_forwards[sample]}

    def generated_ids(self) -> torch.LongTensor:
        """`(samples, gen_length)`: the current generated region of every sample (masked positions hold the mask)."""
        layout = self.layout
        return self._generated(layout.x[:: layout.num_branches])

    def _generated(self, canvas: torch.Tensor) -> torch.Tensor:
        """`(samples, gen_length)`: the generated region of a `(samples, columns)` canvas-wide tensor."""
        layout = self.layout
        index = layout.gen_start[:, None] + torch.arange(layout.gen_length, device=layout.x.device)[None, :]
        return canvas.gather(1, index.clamp(max=layout.x.shape[1] - 1))

    def outputs(self, cut_at_stop: bool) -> list[torch.LongTensor]:
        """Per sample: the generated ids, cut after the first stop token when `cut_at_stop` and after a stop string."""
        generated = self.generated_ids()
        result = []
        for s in range(generated.shape[0]):
            ids = generated[s]
            if cut_at_stop and self.stop_ids.numel():
                stops = torch.isin(ids, self.stop_ids).nonzero()
                if len(stops):
                    ids = ids[: int(stops[0]) + 1]
            if self.string_cut[s] >= 0:
                ids = ids[: int(self.string_cut[s] - self.layout.gen_start[s])]
            result.append(ids)
        return result

    def scores(self, sample: int, length: int) -> dict:
        """`output_scores` fields of one sample's first `length` generated positions: the probability of each token
        when it was committed, and the forward (0-based, counted over the call) that committed it."""
        probs = self._generated(self.commit_probs)[sample, :length]
        steps = self._generated(self.commit_steps)[sample, :length]
        return {"scores": probs[None], "commit_steps": steps[None]}


# ----------------------------------------------------------------------------------------------------- interleaving
# Interleaved decoding writes text and pictures on one growing sequence by alternating two uses of the engine: a text
# span decodes until EOS, the length limit or `<boi>`; a span that ends with an image header (`<|image|>
# <|reserved_token_h|><|reserved_token_w|><boi>`) opens a picture, whose `h * w` codes the next span fills with image
# ids only and the text-to-image guidance (its unconditional branch: the caller's unconditional prompt + the header);
# `<|/image|>` closes it and text continues. Thinking mode is the special case "one picture after the reasoning"
# (`final_image`); conversations (`conversation_llada_uni`) are chat prompts and history on top of it.
@dataclass
class LLaDAUniPrefixCache:
    """Keys / values of the finished blocks of one decoded sequence, to start a later decode of the same prefix.

    Args:
        ids (`list[int]`): the ids of the cached columns (whole blocks from position 0).
        past_key_values (`DynamicCache`): their keys / values (batch 1).
        block_length (`int`): the block length they were computed with.
    """

    ids: list[int]
    past_key_values: DynamicCache
    block_length: int


def _reusable(prefix: LLaDAUniPrefixCache | None, prompt: Sequence[int], block_length: int) -> int:
    """Columns of `prompt` whose keys / values `prefix` holds exactly: whole blocks from position 0 that are equal,
    before the block that holds the first generated position."""
    if prefix is None or prefix.block_length != block_length:
        return 0
    limit = min(len(prefix.ids), (len(prompt) // block_length) * block_length)
    same = 0
    while same < limit and prefix.ids[same] == prompt[same]:
        same += 1
    return (same // block_length) * block_length


def _seeder(model, prompts, prefixes, block_length, record):
    """The engine's `seed_cache`: one `DynamicCache` for all rows of the layout (single-branch only), the columns each
    sample reuses from its prefix cache, zeros on left padding (never attended). `record[s]` gets the reused count."""

    def seed(layout):
        if layout.num_branches != 1 or not any(prefixes):
            return None
        starts = layout.sample_start.tolist()
        reuse = [_reusable(prefix, prompt, block_length) for prefix, prompt in zip(prefixes, prompts)]
        columns = min(start + count for start, count in zip(starts, reuse))
        if columns <= 0:
            return None
        cache = DynamicCache(config=model.config)
        reference = next(p for p in prefixes if p is not None).past_key_values
        for layer_idx, layer in enumerate(reference.layers):
            shape = (len(prompts), layer.keys.shape[1], columns, layer.keys.shape[-1])
            keys = layer.keys.new_zeros(shape)
            values = layer.values.new_zeros(shape[:3] + (layer.values.shape[-1],))
            for s, (start, prefix) in enumerate(zip(starts, prefixes)):
                if start < columns:
                    own = prefix.past_key_values.layers[layer_idx]
                    keys[s, :, start:] = own.keys[0, :, : columns - start]
                    values[s, :, start:] = own.values[0, :, : columns - start]
            cache.update(keys.to(model.device), values.to(model.device), layer_idx)
        for s, start in enumerate(starts):
            record[s] = max(0, columns - start)
        return cache

    return seed


def _take_prefix(decoder, sample: int, block_length: int) -> LLaDAUniPrefixCache | None:
    """The finished blocks a decode leaves in its cache, for the conditional row of `sample`."""
    cache, layout = decoder.forwarder.exact_cache, decoder.layout
    if cache is None or decoder.use_sprint:
        return None
    row = sample * layout.num_branches
    start, columns = int(layout.sample_start[row]), cache.get_seq_length()
    if int(layout.row_start[row]) != start or columns <= start:
        return None
    taken = DynamicCache(config=decoder.forwarder.model.config)
    for layer_idx, layer in enumerate(cache.layers):
        taken.update(layer.keys[row : row + 1, :, start:columns].clone(),
                     layer.values[row : row + 1, :, start:columns].clone(), layer_idx)
    return LLaDAUniPrefixCache(ids=layout.x[row, start:columns].tolist(), past_key_values=taken,
                               block_length=block_length)


class _SpanStreamer:
    """Passes a span's finished blocks to the call's streamer: not the span's prompt (the call's prompt was put once)
    and no mask ids (a stopped block)."""

    def __init__(self, streamer, mask_id):
        self.streamer, self.mask_id, self.prompt_seen = streamer, mask_id, False

    def put(self, value):
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        value = value[value != self.mask_id]
        if value.numel():
            self.streamer.put(value)

    def end(self):
        pass


class _OffsetRules:
    """The caller's logit rules see positions counted from the start of the call's output, across text spans."""

    def __init__(self, rules, offsets):
        self.rules, self.offsets = rules, offsets

    def __call__(self, logits, positions):
        positions = positions + self.offsets[:, None]
        for rule in self.rules:
            logits = rule(logits, positions)
        return logits


@dataclass
class _PictureSpan:
    """The last picture span of a sample as the engine left it: the ids before it, the span's ids (its whole length,
    codes first) and the decoder with the sample's index in it (for its scores and SPRINT record)."""

    prompt: list
    generated: torch.LongTensor
    decoder: _BlockDiffusionDecoder
    index: int


@dataclass
class _InterleavedSample:
    """One sample of an interleaved decode: its growing ids, its segments (chat-format content parts) and state."""

    ids: list
    unconditional: list | None
    prompt_length: int
    prefix: LLaDAUniPrefixCache | None
    segments: list = field(default_factory=list)
    pending: tuple | None = None  # (h, w) of an opened picture
    picture: _PictureSpan | None = None
    done: bool = False
    stopped: bool = False
    reused: int = 0


def _split_text_span(tokenizer, special, generated, stopped, image_size, default_grid, final_image):
    """The one rule for how a text span ends: `(text ids, grid of the picture that follows or None, warning or None)`.

    - stopped by a callback: the text up to the first mask, no picture;
    - ends with `<boi>`: the model opened a picture; the text ends before its header (the last `<|image|>`, else only
      `<boi>` is dropped) and the grid is `image_size` if given, else the header's; a header whose sides are not size
      tokens gets `image_size` or the `default_grid`, and a header of another size than `image_size` is rewritten;
    - EOS or the length limit: the text without the EOS; no picture, except with `final_image` (thinking mode: the
      picture after the reasoning comes anyway, of `image_size` or the `default_grid`).
    """
    if stopped:
        masked = [i for i, t in enumerate(generated) if t == special.mask_token_id]
        return (generated[: masked[0]] if masked else generated), None, None
    if generated and generated[-1] == special.boi_token_id:
        written = parse_image_header(tokenizer, generated)
        cut = len(generated) - 1
        if special.image_token_id in generated:
            cut = len(generated) - 1 - generated[::-1].index(special.image_token_id)
        if written is None:
            grid = tuple(image_size or default_grid)
            which = "requested" if image_size else "default"
            source = "" if image_size else " (`image_h` x `image_w` of the generation config)"
            return generated[:cut], grid, (
                "The model opened a picture with a header whose sides are not size tokens "
                f"({tokenizer.decode(generated[cut:])!r}); generating the {which} {grid[0]} x {grid[1]} grid{source} "
                "and rewriting the header to it."
            )
        if image_size is not None and written != tuple(image_size):
            return generated[:cut], tuple(image_size), (
                f"The model opened a {written[0]} x {written[1]} picture; generating the requested {image_size[0]} x "
                f"{image_size[1]} instead (its header is rewritten)."
            )
        return generated[:cut], written, None
    text = generated[:-1] if generated and generated[-1] in special.eos_token_ids else generated
    if not final_image:
        return text, None, None
    grid = tuple(image_size or default_grid)
    return text, grid, (
        "The model did not end its thinking (the text before the picture) with an image header within the length "
        f"limit; generating the {'requested' if image_size else 'default'} {grid[0]} x {grid[1]} picture after it."
    )


class LLaDAUniGenerationMixin:
    """Block-diffusion generation for [`LLaDAUniForConditionalGeneration`]: `generate` (text), `understand_image`,
    `generate_image` (normal and thinking), `edit_image` and `inpaint_image`, all driven by one engine (and, through
    the model's other mixins, `chat` / `generate_interleaved` on its interleaved decoding).

    Image and understanding methods need a tokenizer: pass `tokenizer=` or set one with `set_tokenizer`.
    """

    generation_config_class = LLaDAUniGenerationConfig
    output_modalities = ("text", "image")
    tokenizer = None

    # ------------------------------------------------------------------------------------------- plumbing
    def prepare_inputs_for_generation(self, input_ids: torch.LongTensor, attention_mask: torch.Tensor | None = None,
                                      **kwargs: Any) -> dict[str, Any]:
        """The forward inputs of one step: transformers' generation hook, which PEFT's causal-LM wrapper requires and
        calls. Unlike autoregressive decoding, nothing is cut off for the cache: the window given is the one to run.
        (The block-diffusion engine calls the decoder and the LM head itself, to read prefix confidences for SPRINT.)

        Args:
            input_ids (`torch.LongTensor` of shape `(batch, window)`): the ids of the window.
            attention_mask (`torch.Tensor`, *optional*): its mask (4-D block-causal from the engine).
            kwargs: the other forward arguments (`position_ids`, `cache`, `use_cache`, `logits_to_keep`, ...).
        """
        return {"input_ids": input_ids, "attention_mask": attention_mask, **kwargs}

    def set_tokenizer(self, tokenizer: PreTrainedTokenizerBase) -> LLaDAUniGenerationMixin:
        """Remember `tokenizer` for the methods that build prompts (`understand_image`, `generate_image`, ...)."""
        self.tokenizer = tokenizer
        return self

    def adjust_generation_fn(self, generation_config: GenerationConfig | None, from_auto_class: bool,
                             from_pipeline: str | None, pretrained_model_name_or_path: str | os.PathLike | None,
                             cache_dir: str | os.PathLike | None = None, force_download: bool = False,
                             proxies: dict[str, str] | None = None, local_files_only: bool = False,
                             token: str | bool | None = None, revision: str | None = None, subfolder: str = "",
                             trust_remote_code: bool | None = None, **kwargs: Any) -> None:
        """Called by `from_pretrained`: load `generation_config.json` as a [`LLaDAUniGenerationConfig`]."""
        if generation_config is not None:
            self.generation_config = self.generation_config_class.from_dict(generation_config.to_dict())
            return
        if pretrained_model_name_or_path is None:
            return
        try:
            self.generation_config = self.generation_config_class.from_pretrained(
                pretrained_model_name_or_path,
                cache_dir=cache_dir,
                force_download=force_download,
                proxies=proxies,
                local_files_only=local_files_only,
                token=token,
                revision=revision,
                subfolder=subfolder,
                _from_auto=from_auto_class,
                _from_pipeline=from_pipeline,
            )
        except OSError:
            logger.info("No generation_config.json found; using defaults derived from the model config.")
            self.generation_config = self.generation_config_class.from_model_config(self.config)

    def _generation_settings(self, generation_config: GenerationConfig | None = None, mode: str = "text",
                             generate_call: bool = False, **kwargs) -> LLaDAUniGenerationConfig:
        """The settings of one call, as transformers resolves them: keyword arguments over the set (non-None) values
        of `generation_config` over `model.generation_config` over the defaults. `mode` picks the per-mode fields
        (e.g. `image_steps`) that the shared keyword names (`steps`) stand for."""
        model_config = getattr(self, "generation_config", None)
        if model_config is None:
            config = self.generation_config_class.from_model_config(self.config)
        elif isinstance(model_config, LLaDAUniGenerationConfig):
            config = copy.deepcopy(model_config)
        else:
            config = self.generation_config_class.from_dict(model_config.to_dict())
        if generation_config is not None:
            if not isinstance(generation_config, GenerationConfig):
                raise TypeError(
                    f"`generation_config` must be a GenerationConfig, got {type(generation_config).__name__}."
                )
            for key, value in generation_config.to_dict().items():
                if key in _DEPRECATED_SWITCHES and value is not None:
                    key, value = _DEPRECATED_SWITCHES[key], _deprecated_switch(key, value)
                elif value is None or key.startswith("_") or key == "transformers_version" or not hasattr(config, key):
                    continue
                setattr(config, key, value)
        kwargs = {key: value for key, value in kwargs.items() if value is not None}
        if mode == "text" and "gen_length" in kwargs:
            # The original's name of a call's length: transformers' `max_new_tokens`, which a call's `max_length`
            # or a config's `max_new_tokens` must not override.
            length = kwargs.pop("gen_length")
            if kwargs.setdefault("max_new_tokens", length) != length:
                raise ValueError(f"`gen_length` ({length}) and `max_new_tokens` ({kwargs['max_new_tokens']}) are the "
                                 "same setting: give one.")
        for old, new in _DEPRECATED_SWITCHES.items():
            if old in kwargs:
                kwargs[new] = _deprecated_switch(old, kwargs.pop(old))
        fields = _MODE_FIELDS[mode]
        for shared, field in fields.items():
            if shared in kwargs:
                kwargs[field] = kwargs.pop(shared)
        unknown = [key for key in kwargs if not hasattr(config, key)]
        if unknown:
            raise TypeError(f"Unexpected generation argument(s) {unknown}; see `LLaDAUniGenerationConfig`.")
        for key, value in kwargs.items():
            setattr(config, key, value)
        for shared, field in fields.items():
            setattr(config, shared, getattr(config, field))
        # transformers' switch: `do_sample=False` is greedy whatever the temperature; `do_sample=True` samples.
        if config.do_sample is False:
            config.temperature = 0.0
        elif config.do_sample and not config.temperature:
            config.temperature = 1.0
        unsupported = [
            f"`{name}={getattr(config, name)!r}` ({why})" for name, (neutral, why) in _UNSUPPORTED_OPTIONS.items()
            if getattr(config, name, None) is not None and getattr(config, name) != neutral
        ]
        if unsupported:
            raise ValueError("Block-diffusion generation does not support " + "; ".join(unsupported)
                             + ". Remove it from the call or the generation config.")
        if mode != "text" or not generate_call:
            if (config.num_return_sequences or 1) > 1:
                raise ValueError(f"`num_return_sequences={config.num_return_sequences}` applies to `generate`; here "
                                 "give the prompt several times in a list (and sample, e.g. `temperature=1.0`).")
        # After the copy, so an invalid `steps=` names the keyword the caller used.
        config.validate_diffusion()
        return config

    def _resolve_tokenizer(self, tokenizer, what):
        tokenizer = tokenizer if tokenizer is not None else self.tokenizer
        if tokenizer is None:
            raise ValueError(
                f"`{what}` needs a tokenizer to build its prompt: pass `tokenizer=` or call "
                "`model.set_tokenizer(tokenizer)` first."
            )
        return tokenizer

    def _special_ids(self, tokenizer, config: LLaDAUniGenerationConfig,
                     required: Sequence[str] = ALL_SPECIAL_TOKENS) -> LLaDAUniSpecialTokenIds:
        """The one resolver (`get_special_token_ids`) on the model config with the call's generation config on top."""
        merged = copy.copy(self.config)
        for name in ("mask_token_id", "eos_token_id", "pad_token_id"):
            value = getattr(config, name, None)
            if value is not None:
                setattr(merged, name, value)
        return get_special_token_ids(tokenizer, merged, required=required)

    def _progress_bar(self, config, total):
        disabled = (
            not config.show_progress_bar
            or not hf_logging.is_progress_bar_enabled()
            or hf_logging.get_verbosity() > hf_logging.WARNING
        )
        return hf_logging.tqdm(total=total, desc="Blocks", disable=disabled, leave=False)

    def _decode(self, branch_prompts, gen_length, config, guidance, mask_id, image_token_offset, stop_ids=(),
                logit_rules=(), stop_strings=None, callback=None, streamer=None, generator=None, canvas=None,
                seed_cache=None):
        """Run the engine on `branch_prompts[sample][branch]` (lists of ids) and return it (for ids and stats).
        `canvas`: the generated region's starting ids per sample (see `_Layout.build`; inpainting pins cells).
        `seed_cache` (`Callable[[_Layout], DynamicCache | None]`): the finished-block keys/values to start from."""
        device = self.device
        layout = _Layout.build(branch_prompts, gen_length, config.block_length, mask_id, device, canvas=canvas)
        self._check_positions(branch_prompts, layout)
        decoder = _BlockDiffusionDecoder(
            self, layout, guidance, config, mask_id, image_token_offset, stop_token_ids=stop_ids,
            logit_rules=logit_rules, stop_strings=stop_strings, callback=callback, streamer=streamer,
            generator=generator, past_key_values=seed_cache(layout) if seed_cache is not None else None,
        )
        num_blocks = layout.x.shape[1] // config.block_length - int((layout.gen_start // config.block_length).min())
        bar = self._progress_bar(config, num_blocks)
        try:
            with torch.no_grad():
                decoder.run(progress_bar=bar)
        finally:
            bar.close()
        return decoder

    def _check_positions(self, branch_prompts, layout):
        """Warn when positions run past the range the model was trained with (`max_position_embeddings`)."""
        limit = getattr(self.config, "max_position_embeddings", None)
        if not limit:
            return
        prompt = max(len(p) for branches in branch_prompts for p in branches)
        # Canvas positions start at 0 on a row's first token and run to the end of the last block.
        reach = int((layout.gen_start + layout.gen_length - layout.row_start.view(-1, layout.num_branches)
                     .amin(dim=1)).max())
        if prompt > limit:
            logger.warning(f"The prompt ({prompt} tokens) is longer than `max_position_embeddings` ({limit}), the "
                           "positions the model was trained with: expect degraded output; shorten the prompt.")
        elif reach > limit:
            logger.warning(f"The prompt ({prompt} tokens) and the {layout.gen_length} generated tokens reach "
                           f"position {reach - 1}, past `max_position_embeddings` ({limit}), the positions the "
                           "model was trained with: expect degraded output at the end; generate fewer tokens.")

    # ------------------------------------------------------------------------------------------- text
    @staticmethod
    def _text_gen_length(config: LLaDAUniGenerationConfig, prompt_length: int) -> int:
        """New tokens of a text mode, as transformers decides them: `max_new_tokens`, else `max_length` minus the
        (padded) prompt, else the mode's `gen_length`."""
        if config.max_new_tokens is not None:
            if config.max_length is not None:
                logger.warning_once(
                    f"Both `max_new_tokens` (={config.max_new_tokens}) and `max_length` (={config.max_length}) are "
                    "set; `max_new_tokens` takes precedence, as in transformers."
                )
            return config.max_new_tokens
        if config.max_length is not None:
            if config.max_length <= prompt_length:
                raise ValueError(f"`max_length` ({config.max_length}) counts the prompt ({prompt_length} tokens) too: "
                                 "leave room for new tokens, or give `max_new_tokens`.")
            return config.max_length - prompt_length
        return config.gen_length

    def _text_rules(self, config, special, prompt_length, tokenizer, num_samples, what):
        """The logit rules and stop strings of a text mode: `min_new_tokens` / `min_length` and `stop_strings`."""
        rules = []
        min_new = config.min_new_tokens
        if min_new is None and config.min_length:
            min_new = config.min_length - prompt_length
        if min_new and min_new > 0 and special.eos_token_ids:
            rules.append(_NoStopBefore(special.eos_token_ids, min_new))
        stop_strings = None
        if config.stop_strings:
            if tokenizer is None:
                raise ValueError(f"`stop_strings` need the tokenizer to read the text: pass `tokenizer=` to `{what}` "
                                 "or call `model.set_tokenizer(tokenizer)`.")
            stop_strings = _StopStrings(tokenizer, config.stop_strings, num_samples)
        return rules, stop_strings

    def generate(self, input_ids: torch.LongTensor | None = None, attention_mask: torch.Tensor | None = None,
                 generation_config: GenerationConfig | None = None, *,
                 tokenizer: PreTrainedTokenizerBase | None = None, streamer: BaseStreamer | None = None,
                 callback: Callable[[int, int, torch.LongTensor], Any] | None = None,
                 generator: torch.Generator | None = None, return_dict_in_generate: bool | None = None,
                 **kwargs: Any) -> torch.LongTensor | LLaDAUniGenerateOutput:
        r"""
        Block-diffusion text generation (the original `generate_bd`), batched.

        Args:
            input_ids (`torch.LongTensor` of shape `(batch, length)` or `(length,)`): prompts. Rows of different
                lengths may be padded on either side; `attention_mask` (1 = real token) tells which ids are real.
            generation_config (`GenerationConfig`, *optional*): its set values override `model.generation_config`;
                `kwargs` override both: the diffusion settings of [`LLaDAUniGenerationConfig`] (`steps`,
                `block_length`, `threshold`, `use_sprint`, ...) and transformers' `max_new_tokens` (the original's
                `gen_length`) / `max_length`, `do_sample` / `temperature` / `top_k` / `top_p`, `num_return_sequences`
                (sampling only), `stop_strings`, `min_new_tokens` / `min_length`, `output_scores`. Options without a
                meaning in block diffusion (beam search, repetition penalties, ...) raise a ValueError.
            tokenizer (*optional*): needed when the config has no mask token id (the released layout) and for
                `stop_strings`.
            streamer (`BaseStreamer`, *optional*): e.g. `transformers.TextStreamer`; receives the prompt, then each
                finished block in order (batch size 1 only).
            callback (`Callable[[int, int, torch.LongTensor], Any]`, *optional*): called after every step with
                `(step within the block, block index counted from the first block that holds generated tokens,
                generated ids (batch, gen_length) with masks still in)`.
            generator (`torch.Generator`, *optional*): randomness for sampling and the `random` remasking strategy.

        Returns:
            `torch.LongTensor` of shape `(batch, length)`: each row is the prompt (left-padded with `pad_token_id`)
            followed by its generated tokens, cut after the first EOS and right-padded with `pad_token_id`. For one
            unpadded prompt this is the original's `prompt + generated`. With `return_dict_in_generate=True`, a
            [`LLaDAUniGenerateOutput`] that also holds the number of forward passes (and, with `output_scores=True`,
            each token's probability when committed). `num_return_sequences` copies of a prompt are adjacent rows.
        """
        # Processor picture inputs -> image ids in `input_ids` (see `image_inputs_llada_uni`).
        input_ids = self._merge_image_inputs(input_ids, *(kwargs.pop(name, None) for name in IMAGE_INPUT_NAMES))
        config = self._generation_settings(generation_config, generate_call=True, **kwargs)
        if return_dict_in_generate is None:
            return_dict_in_generate = bool(config.return_dict_in_generate)
        tokenizer = tokenizer if tokenizer is not None else self.tokenizer
        if input_ids is None:
            raise ValueError("`generate` needs `input_ids` (the tokenised prompt).")
        if not isinstance(input_ids, torch.Tensor):
            raise TypeError(f"`input_ids` must be a torch.LongTensor, got {type(input_ids).__name__}.")
        if input_ids.ndim == 1:
            input_ids = input_ids[None]
            attention_mask = attention_mask[None] if attention_mask is not None and attention_mask.ndim == 1 else attention_mask
        if input_ids.ndim != 2:
            raise ValueError(f"`input_ids` must be 1-D or 2-D, got shape {tuple(input_ids.shape)}.")
        if input_ids.shape[0] == 0:
            raise ValueError(f"`input_ids` holds no prompt (shape {tuple(input_ids.shape)}): give at least one.")
        if attention_mask is not None and attention_mask.shape != input_ids.shape:
            raise ValueError(
                f"`attention_mask` shape {tuple(attention_mask.shape)} does not match `input_ids` "
                f"{tuple(input_ids.shape)}."
            )
        copies = config.num_return_sequences or 1
        if copies > 1 and not config.temperature:
            raise ValueError(f"`num_return_sequences={copies}` needs sampling (greedy decoding returns the same "
                             "sequence every time): pass `do_sample=True` or a `temperature` above 0.")
        if streamer is not None and input_ids.shape[0] * copies != 1:
            raise ValueError("`streamer` supports a batch of one prompt only.")
        special = self._special_ids(tokenizer, config, required=("mask_token_id",))
        prompts = []
        for row in range(input_ids.shape[0]):
            ids = input_ids[row] if attention_mask is None else input_ids[row][attention_mask[row].bool()]
            if ids.numel() == 0:
                raise ValueError(f"Prompt {row} is empty: give at least one token.")
            # `num_return_sequences` copies of each prompt, next to each other (transformers' order).
            prompts.extend([[[int(t) for t in ids.tolist()]]] * copies)
        prompt_length = input_ids.shape[1]
        gen_length = self._text_gen_length(config, prompt_length)
        rules, stop_strings = self._text_rules(config, special, prompt_length, tokenizer, len(prompts), "generate")
        decoder = self._decode(prompts, gen_length, config, _Guidance("none"), special.mask_token_id,
                               special.image_token_offset, stop_ids=special.eos_token_ids, logit_rules=rules,
                               stop_strings=stop_strings, callback=callback, streamer=streamer, generator=generator)
        generated = decoder.outputs(cut_at_stop=True)
        sequences = self._pack([p[0] for p in prompts], generated, special.pad_token_id)
        if not return_dict_in_generate:
            return sequences
        output = LLaDAUniGenerateOutput(sequences=sequences, num_forward_passes=decoder.nfe,
                                        sprint_prunes=decoder.forwarder.sprint_prunes if decoder.use_sprint else None,
                                        sprint_cached_forwards=(decoder.forwarder.sprint_cached_forwards
                                                                if decoder.use_sprint else None))
        if config.output_scores:
            # Aligned with `sequences[:, prompt_length:]`; padding after a row's end scores 0 at step -1.
            new = sequences.shape[1] - prompt_length
            rows = [decoder.scores(s, new) for s in range(len(prompts))]
            output.scores = torch.cat([row["scores"] for row in rows])
            output.commit_steps = torch.cat([row["commit_steps"] for row in rows])
            for s, ids in enumerate(generated):
                output.scores[s, len(ids) :] = 0.0
                output.commit_steps[s, len(ids) :] = -1
        return output

    def _pack(self, prompts, generated, pad_id):
        """Rows of `prompt + generated`: prompts left-padded, generated ids right-padded with `pad_id`."""
        generated = [g.tolist() for g in generated]
        if pad_id is None and (len({len(p) for p in prompts}) > 1 or len({len(g) for g in generated}) > 1):
            raise ValueError("Rows of different lengths need a pad id: set `pad_token_id` (or `eos_token_id`) in the "
                             "generation config or pass the tokenizer.")
        pad_id = 0 if pad_id is None else pad_id  # no row is padded then
        left, _ = pad_sequences(prompts, pad_id, side="left")
        right, _ = pad_sequences(generated, pad_id, side="right")
        return torch.tensor([p + g for p, g in zip(left, right)], dtype=torch.long, device=self.device)

    # ------------------------------------------------------------------------------------------- understanding
    def understand_image(self,
                         image_tokens: Sequence[int] | Sequence[Sequence[int]] | torch.LongTensor | dict[str, Any]
                         | Sequence[dict[str, Any] | Sequence[dict[str, Any]]],
                         h: int | Sequence[int] | None = None, w: int | Sequence[int] | None = None,
                         question: str | Sequence[str] | None = None, tokenizer: PreTrainedTokenizerBase | None = None,
                         steps: int | None = None,
                         block_length: int | None = None, gen_length: int | None = None,
                         temperature: float | None = None, threshold: float | None = None,
                         use_chat_template: bool = False, return_dict: bool = False,
                         generation_config: GenerationConfig | None = None,
                         callback: Callable[[int, int, torch.LongTensor], Any] | None = None,
                         streamer: BaseStreamer | None = None,
                         generator: torch.Generator | None = None, **kwargs: Any,
                         ) -> str | LLaDAUniUnderstandingOutput | list[str] | list[LLaDAUniUnderstandingOutput]:
        """Answer `question` about an image given as `h * w` image ids (codes plus `image_token_offset`), or about
        several images. Without `h` and `w`, `image_tokens` is what `processor.encode_images` returns: one dict, or
        the list of one prompt's dicts (`model.understand_image(encoded, question=...)`).

        The prompt is the original's `header + image + <|/image|> + question` (`use_chat_template=True` wraps the
        image and question in the tokenizer's chat template instead). Several images: `h` and `w` are sequences (one
        side per image) and `image_tokens` one id sequence per image (e.g. `[a["image_tokens"], b["image_tokens"]]`);
        their image blocks follow one another in that order before the question. Returns the text decoded from the
        question onwards with special tokens skipped, as the original; `return_dict=True` returns a
        [`LLaDAUniUnderstandingOutput`] with the ids as well.

        A batch: `question` a list, and `image_tokens` one `encode_images` entry (a dict, or a list of dicts) per
        question, without `h` and `w`. All prompts are decoded together, one forward per step; the result is a list.

        Settings not given as keywords come from `generation_config=`, then `model.generation_config` (`steps`,
        `gen_length`; transformers' `max_new_tokens` / `max_length`, `stop_strings`, `min_new_tokens` apply too).

        Args:
            image_tokens: one image's flat image ids (with `h`, `w`), one id sequence per image (with `h`, `w`
                sequences), or without `h` and `w` what `processor.encode_images` returns (a dict, a list of one
                prompt's dicts, or for a batch one such entry per question).
            h, w (`int` or `Sequence[int]`, *optional*): the code grid of each image when `image_tokens` holds bare
                ids.
            question (`str` or `list[str]`): the question; a list makes a batch.
            tokenizer ([`PreTrainedTokenizerBase`], *optional*): defaults to the one set with `set_tokenizer`.
            steps, block_length, gen_length, temperature, threshold (*optional*): the sampling settings of
                [`LLaDAUniGenerationConfig`] for this call.
            use_chat_template (`bool`, defaults to `False`): wrap image and question in the tokenizer's chat template.
            return_dict (`bool`, defaults to `False`): return [`LLaDAUniUnderstandingOutput`]s instead of strings.
            generation_config (`GenerationConfig`, *optional*): its set values override `model.generation_config`.
            callback (`Callable[[int, int, torch.LongTensor], Any]`, *optional*): called after every step, as in
                [`~LLaDAUniGenerationMixin.generate`].
            streamer (`BaseStreamer`, *optional*): receives the prompt, then each finished block (one question only).
            generator (`torch.Generator`, *optional*): randomness for sampling.
            kwargs: other [`LLaDAUniGenerationConfig`] settings.

        Returns:
            `str` (or [`LLaDAUniUnderstandingOutput`] with `return_dict=True`), a list of them for a batch.
        """
        tokenizer = self._resolve_tokenizer(tokenizer, "understand_image")
        config = self._generation_settings(
            generation_config, steps=steps, block_length=block_length, gen_length=gen_length,
            temperature=temperature, threshold=threshold, **kwargs,
        )
        special = self._special_ids(tokenizer, config)
        batched = isinstance(question, (list, tuple))
        requests = parse_image_inputs(image_tokens, h, w, texts=question, what="question")
        if batched and streamer is not None and len(question) > 1:
            raise ValueError("A streamer follows one answer: give one question, not a batch.")
        prompts, question_starts = [], []
        for images, text in zip(requests, question if batched else [question]):
            prompt, start = self._understanding_prompt(tokenizer, special, images, text, use_chat_template)
            prompts.append(prompt)
            question_starts.append(start)
        longest = max(len(prompt) for prompt in prompts)
        gen_length = self._text_gen_length(config, longest)
        rules, stop_strings = self._text_rules(config, special, longest, tokenizer, len(prompts), "understand_image")
        decoder = self._decode([[prompt] for prompt in prompts], gen_length, config, _Guidance("none"),
                               special.mask_token_id, special.image_token_offset, stop_ids=special.eos_token_ids,
                               logit_rules=rules, stop_strings=stop_strings, callback=callback, streamer=streamer,
                               generator=generator)
        results = []
        for s, (prompt, start, generated) in enumerate(zip(prompts, question_starts, decoder.outputs(cut_at_stop=True))):
            sequence = torch.cat([torch.tensor(prompt, dtype=torch.long, device=generated.device), generated])
            text = tokenizer.decode(sequence[start:].tolist(), skip_special_tokens=True)
            results.append(
                LLaDAUniUnderstandingOutput(text=text, sequences=sequence[None], num_forward_passes=decoder.nfe,
                                            **decoder.sprint_stats(s),
                                            **(decoder.scores(s, len(generated)) if config.output_scores else {}))
                if return_dict else text
            )
        return results if batched else results[0]

    def _understanding_prompt(self, tokenizer, special, images, question, use_chat_template):
        """The prompt ids of one understanding request (`images` as `parse_image_inputs` gives them), and where its
        question starts."""
        # The public boundary: every image's ids fill its grid with image ids (checked once, here).
        image_tokens = [
            validate_image_token_ids(ids, side_h, side_w, special.image_token_offset, special.image_codebook_size,
                                     name=name)
            for name, ids, side_h, side_w in images
        ]
        # One image given as one-element lists builds the same prompt as the plain form.
        h, w = [image[2] for image in images], [image[3] for image in images]
        prompt = build_understanding_prompt(tokenizer, image_tokens, h, w, question,
                                            use_chat_template=use_chat_template)
        question_ids = encode_text(tokenizer, question)
        if use_chat_template:
            return prompt, self._find_subsequence(prompt, question_ids)
        return prompt, len(prompt) - len(question_ids)

    @staticmethod
    def _find_subsequence(sequence, part):
        for start in range(len(sequence) - len(part), -1, -1):
            if sequence[start : start + len(part)] == part:
                return start
        return 0

    # ------------------------------------------------------------------------------------------- images
    @staticmethod
    def _image_ids_only(special: LLaDAUniSpecialTokenIds) -> _AllowedIds:
        return _AllowedIds(special.image_token_offset, special.image_token_offset + special.image_codebook_size)

    @staticmethod
    def _image_gen_length(gen_length, h, w):
        if gen_length is None:
            return h * w
        if not isinstance(gen_length, int) or isinstance(gen_length, bool) or gen_length < h * w:
            raise ValueError(
                f"`gen_length` ({gen_length!r}) must be at least the grid size h * w = {h} * {w} = {h * w}."
            )
        return gen_length

    def _decode_picture(self, conditional, unconditional, length, config, special, callback=None, generator=None,
                        seed_cache=None):
        """A picture span of every sample: `length` ids after `conditional[s]` (a prompt ending with an image header),
        image ids only, the text-to-image guidance of `config` with `unconditional[s]` (ending with the same header)
        as its unconditional branch (unused when guidance is off). Returns the decoder."""
        guidance = _Guidance.text_to_image(config.cfg_scale, config.guidance_rescale)
        if guidance.guided:
            branches = [[c, u] for c, u in zip(conditional, unconditional)]
        else:
            branches = [[c] for c in conditional]
        return self._decode(branches, length, config, guidance, special.mask_token_id, special.image_token_offset,
                            logit_rules=[self._image_ids_only(special)], callback=callback, generator=generator,
                            seed_cache=seed_cache)

    def _decode_interleaved(self, tokenizer, special, prompts, unconditional, text_config, image_config,
                            prefixes=None, image_size=None, final_image=False, picture_length=None, logit_rules=(),
                            span_callback=None, streamer=None, generator=None, keep_history=False):
        """Interleaved decoding after each prompt (see the section comment above `LLaDAUniPrefixCache`); the callers
        validate. Returns `(samples, forwards)`: one `_InterleavedSample` per prompt and the forwards of all spans.

        Args:
            prompts, unconditional: per sample, the prompt ids and the unconditional branch's ids before a picture's
                header (None: pictures unguided).
            text_config, image_config: the settings of text spans (`max_new_tokens`, else `gen_length`, counts every
                generated id; an opened picture is always finished) and of picture spans.
            prefixes: per sample, a `LLaDAUniPrefixCache` whose finished blocks seed the first span (history reuse).
            image_size: `(h, w)` codes of every picture (a header of another size is rewritten, with a warning);
                unset, the header's, or `image_h` x `image_w` for a header without size tokens.
            final_image: thinking mode's form: text, then one picture whatever ended the text, then the end.
            picture_length: ids decoded per picture span (defaults to `h * w`; the codes are its first `h * w`).
            logit_rules: rules on text spans, positions counted from the start of the output.
            span_callback: `span_callback(kind, samples, length)` per span (`kind` "text" / "image", the span's
                samples, its length) returns the engine callback of the span, or None.
            streamer: receives the first prompt once, then the text spans' finished blocks of sample 0.
            keep_history: keep each sample's finished blocks after the last span (`sample.prefix`).
        """
        block_length = text_config.block_length
        guided = _Guidance.text_to_image(image_config.cfg_scale, image_config.guidance_rescale).guided
        budget = text_config.max_new_tokens if text_config.max_new_tokens is not None else text_config.gen_length
        default_grid = image_size or image_grid_size(text_config.image_h, text_config.image_w)
        reuse = text_config.use_cache and not text_config.use_sprint
        samples = [
            _InterleavedSample(ids=list(p), unconditional=None if unconditional is None else list(unconditional[s]),
                               prompt_length=len(p), prefix=(prefixes[s] if prefixes and reuse else None))
            for s, p in enumerate(prompts)
        ]
        stop_ids = [special.boi_token_id, *special.eos_token_ids]
        nfe = 0
        first_span = True
        if streamer is not None:
            streamer.put(torch.tensor(samples[0].ids))

        def callback_of(kind, group, length):
            return span_callback(kind, [samples[s] for s in group], length) if span_callback is not None else None

        while True:
            # Text spans: every sample not done, grouped by the tokens left (one canvas length per decode).
            groups = {}
            for s, sample in enumerate(samples):
                if not sample.done:
                    left = budget - (len(sample.ids) - sample.prompt_length)
                    if left <= 0:
                        sample.done = True
                    else:
                        groups.setdefault(left, []).append(s)
            if not groups:
                break
            for left, group in groups.items():
                group_prompts = [samples[s].ids for s in group]
                record = [0] * len(group)
                offsets = torch.tensor([len(samples[s].ids) - samples[s].prompt_length for s in group],
                                       device=self.device)
                rules = [_OffsetRules(list(logit_rules), offsets)] if logit_rules else []
                seed = _seeder(self, group_prompts, [samples[s].prefix for s in group], block_length, record)
                decoder = self._decode(
                    [[p] for p in group_prompts], left, text_config, _Guidance("none"), special.mask_token_id,
                    special.image_token_offset, stop_ids=stop_ids, logit_rules=rules,
                    callback=callback_of("text", group, left),
                    streamer=_SpanStreamer(streamer, special.mask_token_id) if streamer is not None else None,
                    generator=generator, seed_cache=seed if reuse else None,
                )
                nfe += decoder.nfe
                for index, (s, generated) in enumerate(zip(group, decoder.outputs(cut_at_stop=True))):
                    sample = samples[s]
                    if first_span:
                        sample.reused = record[index]
                    text, grid, problem = _split_text_span(tokenizer, special, generated.tolist(), decoder.stopped,
                                                           image_size, default_grid, final_image)
                    if problem is not None:
                        logger.warning(problem)
                    if text:
                        decoded = tokenizer.decode(text, skip_special_tokens=True)
                        sample.segments.append({"type": "text", "text": decoded, "token_ids": list(text)})
                    sample.ids += text
                    sample.stopped = decoder.stopped
                    if grid is None:
                        sample.done = True
                    else:
                        sample.ids += image_header_ids(tokenizer, *grid)
                        sample.pending = grid
                    # The finished blocks seed what follows: a picture (single-branch only) or the next turn.
                    wanted = (not guided) if grid is not None else keep_history
                    sample.prefix = _take_prefix(decoder, index, block_length) if reuse and wanted else None
            first_span = False
            # Picture spans: the samples that opened one, grouped by grid.
            groups = {}
            for s, sample in enumerate(samples):
                if sample.pending is not None:
                    groups.setdefault(sample.pending, []).append(s)
            for (h, w), group in groups.items():
                header = image_header_ids(tokenizer, h, w)
                length = picture_length or h * w
                record = [0] * len(group)
                seed = _seeder(self, [samples[s].ids for s in group], [samples[s].prefix for s in group],
                               block_length, record)
                decoder = self._decode_picture(
                    [samples[s].ids for s in group],
                    [samples[s].unconditional + header for s in group] if guided else None, length, image_config,
                    special, callback=callback_of("image", group, length), generator=generator,
                    seed_cache=seed if reuse else None,
                )
                nfe += decoder.nfe
                for index, (s, generated) in enumerate(zip(group, decoder.outputs(cut_at_stop=False))):
                    sample = samples[s]
                    sample.pending = None
                    sample.picture = _PictureSpan(prompt=list(sample.ids), generated=generated, decoder=decoder,
                                                  index=index)
                    if decoder.stopped:
                        # An unfinished picture is left out, its header too.
                        del sample.ids[len(sample.ids) - len(header) :]
                        sample.done = sample.stopped = True
                        continue
                    codes = generated[: h * w].tolist()
                    sample.ids += codes + [special.end_image_token_id]
                    sample.segments.append({"type": "image", "image": {"image_tokens": codes, "h": h, "w": w}})
                    sample.done = final_image
                    wanted = keep_history or not final_image
                    sample.prefix = _take_prefix(decoder, index, block_length) if reuse and wanted else None
        if streamer is not None:
            streamer.end()
        return samples, nfe

    def generate_image(self, prompt: str | Sequence[str], tokenizer: PreTrainedTokenizerBase | None = None,
                       image_h: int | None = None,
                       image_w: int | None = None, steps: int | None = None, block_length: int | None = None,
                       cfg_scale: float | None = None, gen_length: int | None = None, temperature: float | None = None,
                       mode: str = "normal", negative_prompt: str | Sequence[str] | None = None,
                       use_sprint: bool | None = None, keep_ratio: float | None = None,
                       cache_warmup_steps: int | None = None, confidence_alpha: float | None = None,
                       remasking_strategy: str | None = None, thinking_steps: int | None = None,
                       thinking_gen_length: int | None = None, generation_config: GenerationConfig | None = None,
                       callback: Callable[[int, int, torch.LongTensor], Any] | None = None,
                       generator: torch.Generator | None = None,
                       **kwargs: Any) -> LLaDAUniImageGenerationOutput | list[LLaDAUniImageGenerationOutput]:
        """Text-to-image: generate the image codes of `prompt` (a string, or a list of strings for a batch).

        The grid is `h = (image_h // 2) // 16` by `w = (image_w // 2) // 16` codes; `gen_length` defaults to `h * w`
        (the original's 1088 truncated larger grids). Conditional and unconditional branches share one forward per
        step; guidance is `Lu + cfg_scale (Lc - Lu)`, rescaled (`guidance_rescale`), text ids excluded.

        `mode="thinking"`: the model first writes its reasoning (up to `thinking_gen_length` tokens, `thinking_steps`
        steps per block) ending with an image header, then the codes. If the header it wrote names another size, or
        the reasoning ends without one, a warning is logged and the requested size is used. This is interleaved
        decoding with one picture after the reasoning: `generate_interleaved(..., final_image=True)` on the thinking
        prompt gives the same ids.

        Returns a [`LLaDAUniImageGenerationOutput`] (`.token_ids` codes without offset, `.h`, `.w`, `.thinking`), or a
        list of them for a list of prompts.

        Settings not given as keywords come from `generation_config=`, then `model.generation_config`: `steps` is its
        `image_steps`, and `image_h`, `image_w`, `cfg_scale`, `thinking_steps`, `thinking_gen_length` and the SPRINT
        settings its fields of those names.

        Args:
            prompt (`str` or `list[str]`): the caption; a list makes a batch.
            tokenizer ([`PreTrainedTokenizerBase`], *optional*): defaults to the one set with `set_tokenizer`.
            image_h, image_w (`int`, *optional*): the picture size in pixels the code grid is derived from.
            steps (`int`, *optional*): denoising steps per block (the config's `image_steps`).
            block_length, gen_length, temperature, remasking_strategy (*optional*): sampling settings.
            cfg_scale (`float`, *optional*): classifier-free guidance scale.
            mode (`str`, defaults to `"normal"`): `"normal"` or `"thinking"` (reason first, then draw).
            negative_prompt (`str` or `list[str]`, *optional*): the text of the unconditional guidance branch instead
                of the original's `<uncondition>` (one shared by every prompt, or one per prompt).
            use_sprint, keep_ratio, cache_warmup_steps, confidence_alpha (*optional*): SPRINT acceleration settings.
            thinking_steps, thinking_gen_length (`int`, *optional*): the reasoning text's steps and length limit.
            generation_config (`GenerationConfig`, *optional*): its set values override `model.generation_config`.
            callback (`Callable[[int, int, torch.LongTensor], Any]`, *optional*): called after every step, as in
                [`~LLaDAUniGenerationMixin.generate`].
            generator (`torch.Generator`, *optional*): randomness for sampling.
            kwargs: other [`LLaDAUniGenerationConfig`] settings.

        Returns:
            [`LLaDAUniImageGenerationOutput`], or a list of them for a list of prompts.
        """
        tokenizer = self._resolve_tokenizer(tokenizer, "generate_image")
        batched = not isinstance(prompt, str)
        if batched and not isinstance(prompt, (list, tuple)):
            raise TypeError(f"`prompt` must be a string or a list of strings, got {type(prompt).__name__}.")
        prompts = list(prompt) if batched else [prompt]
        if not prompts:
            raise ValueError("`prompt` is an empty list; give at least one prompt.")
        for p in prompts:
            if not isinstance(p, str):
                raise TypeError(f"`prompt` must be a string or a list of strings, got {type(p).__name__}.")
            if not p.strip():
                raise ValueError("`prompt` is empty; give a non-empty text.")
        if mode not in ("normal", "thinking"):
            raise ValueError(f"`mode` must be 'normal' or 'thinking', got {mode!r}.")
        negatives = [negative_prompt] * len(prompts) if negative_prompt is None or isinstance(negative_prompt, str) \
            else list(negative_prompt)
        if len(negatives) != len(prompts):
            raise ValueError(f"Got {len(prompts)} prompts and {len(negatives)} negative prompts: give one negative "
                             "prompt, or one per prompt.")
        for text in negatives:
            if text is not None and (not isinstance(text, str) or not text.strip()):
                raise ValueError(f"`negative_prompt` must be non-empty text, got {text!r}.")
        config = self._generation_settings(
            generation_config, mode="text_to_image", image_h=image_h, image_w=image_w, steps=steps, block_length=block_length,
            temperature=temperature, cfg_scale=cfg_scale, use_sprint=use_sprint, keep_ratio=keep_ratio,
            cache_warmup_steps=cache_warmup_steps, confidence_alpha=confidence_alpha,
            remasking_strategy=remasking_strategy, thinking_steps=thinking_steps,
            thinking_gen_length=thinking_gen_length, **kwargs,
        )
        h, w = image_grid_size(config.image_h, config.image_w)
        image_header_ids(tokenizer, h, w)  # validates the grid before any work
        gen_length = self._image_gen_length(gen_length, h, w)
        special = self._special_ids(tokenizer, config)
        if mode == "thinking":
            return self._generate_thinking_image(tokenizer, special, config, prompts, negatives, h, w, gen_length,
                                                 callback, generator, batched)
        conditional = [build_text_to_image_prompt(tokenizer, p, h, w) for p in prompts]
        unconditional = [build_text_to_image_unconditional_prompt(tokenizer, h, w, text=n) for n in negatives]
        decoder = self._decode_picture(conditional, unconditional, gen_length, config, special, callback=callback,
                                       generator=generator)
        results = []
        for s, generated in enumerate(decoder.outputs(cut_at_stop=False)):
            sequence = torch.cat([torch.tensor(conditional[s], dtype=torch.long, device=generated.device), generated])
            results.append(LLaDAUniImageGenerationOutput(
                token_ids=generated[: h * w] - special.image_token_offset, h=h, w=w, sequences=sequence[None],
                num_forward_passes=decoder.nfe, **decoder.sprint_stats(s),
                **(decoder.scores(s, h * w) if config.output_scores else {}),
            ))
        return results if batched else results[0]

    def _generate_thinking_image(self, tokenizer, special, config, prompts, negatives, h, w, gen_length, callback,
                                 generator, batched):
        """Thinking mode: interleaved decoding of the thinking prompt with one picture after the reasoning
        (`final_image`), of the requested grid. The reasoning has the thinking fields of `config` (and its SPRINT
        settings, as in the original); the picture the text-to-image ones, its unconditional branch the thinking
        system prompt with `<uncondition>` (or the negative prompt); `callback` follows the picture, as in normal
        mode."""
        text_config = copy.deepcopy(config)
        for shared, field_name in _MODE_FIELDS["thinking"].items():
            setattr(text_config, shared, getattr(config, field_name))
        text_config.max_new_tokens = None  # `thinking_gen_length` is the reasoning's limit
        text_config.eos_early_stop = True
        header = image_header_ids(tokenizer, h, w)
        # The unconditional branch before the header (interleaved decoding appends the picture's header).
        unconditional = [build_text_to_image_unconditional_prompt(tokenizer, h, w, thinking=True, text=n)
                         [: -len(header)] for n in negatives]
        samples, nfe = self._decode_interleaved(
            tokenizer, special, [build_thinking_prompt(tokenizer, p) for p in prompts], unconditional, text_config,
            config, image_size=(h, w), final_image=True, picture_length=gen_length,
            span_callback=(lambda kind, group, length: callback if kind == "image" else None), generator=generator,
        )
        results = []
        for sample in samples:
            span = sample.picture
            thinking = span.prompt[sample.prompt_length : -len(header)]
            sequence = torch.cat([torch.tensor(span.prompt, dtype=torch.long, device=span.generated.device),
                                  span.generated])
            results.append(LLaDAUniImageGenerationOutput(
                token_ids=span.generated[: h * w] - special.image_token_offset, h=h, w=w,
                thinking=tokenizer.decode(thinking, skip_special_tokens=True), sequences=sequence[None],
                num_forward_passes=nfe, **span.decoder.sprint_stats(span.index),
                **(span.decoder.scores(span.index, h * w) if config.output_scores else {}),
            ))
        return results if batched else results[0]

    def edit_image(self, image_tokens: Sequence[int] | torch.LongTensor | dict[str, Any] | Sequence[dict[str, Any]],
                   h: int | None = None, w: int | None = None, instruction: str | Sequence[str] | None = None,
                   tokenizer: PreTrainedTokenizerBase | None = None, steps: int | None = None,
                   block_length: int | None = None, cfg_text_scale: float | None = None,
                   cfg_image_scale: float | None = None, temperature: float | None = None,
                   gen_length: int | None = None, generation_config: GenerationConfig | None = None,
                   callback: Callable[[int, int, torch.LongTensor], Any] | None = None,
                   generator: torch.Generator | None = None,
                   **kwargs: Any) -> LLaDAUniImageGenerationOutput | list[LLaDAUniImageGenerationOutput]:
        """Edit an image (`h * w` image ids, codes plus `image_token_offset`) following `instruction`. Without `h` and
        `w`, `image_tokens` is what `processor.encode_images(..., mode="edit")` returns (one dict).

        Three branches share one forward: full, no-text (`<uncondition>`) and no-image (bare `<|image|>`); guidance
        `Lnt + cfg_text_scale (Lfull - Lnt) + cfg_image_scale (Lnt - Lni)`, rescaled, text ids excluded, on when either
        scale is above 0. The output grid is the input grid (`gen_length` defaults to, and must cover, `h * w`).
        Returns a [`LLaDAUniImageGenerationOutput`].

        A batch: `instruction` a list and `image_tokens` one `encode_images` dict per instruction, all of one grid
        size (the canvas is shared); they are decoded together and a list comes back.

        Settings not given as keywords come from `generation_config=`, then `model.generation_config`: `steps` is its
        `edit_steps`, and `cfg_text_scale`, `cfg_image_scale` its fields of those names.

        Args:
            image_tokens: the source's `h * w` image ids (with `h`, `w`), or `encode_images(..., mode="edit")`
                dict(s), one per instruction.
            h, w (`int`, *optional*): the source's code grid when `image_tokens` holds bare ids.
            instruction (`str` or `list[str]`): the edit to make; a list makes a batch.
            tokenizer ([`PreTrainedTokenizerBase`], *optional*): defaults to the one set with `set_tokenizer`.
            steps (`int`, *optional*): denoising steps per block (the config's `edit_steps`).
            block_length, temperature, gen_length (*optional*): sampling settings.
            cfg_text_scale, cfg_image_scale (`float`, *optional*): guidance scales of the text and image conditions.
            generation_config (`GenerationConfig`, *optional*): its set values override `model.generation_config`.
            callback (`Callable[[int, int, torch.LongTensor], Any]`, *optional*): called after every step, as in
                [`~LLaDAUniGenerationMixin.generate`].
            generator (`torch.Generator`, *optional*): randomness for sampling.
            kwargs: other [`LLaDAUniGenerationConfig`] settings.

        Returns:
            [`LLaDAUniImageGenerationOutput`], or a list of them for a list of instructions.
        """
        tokenizer = self._resolve_tokenizer(tokenizer, "edit_image")
        batched = isinstance(instruction, (list, tuple))
        requests = parse_image_inputs(image_tokens, h, w, texts=instruction, what="instruction")
        for images in requests:
            if len(images) != 1:
                raise TypeError(f"Editing takes one source image per instruction, got {len(images)}: give one "
                                "`encode_images(..., mode='edit')` dict (or ids with `h` and `w`) per instruction.")
        config = self._generation_settings(
            generation_config, mode="editing", steps=steps, block_length=block_length, temperature=temperature,
            cfg_text_scale=cfg_text_scale, cfg_image_scale=cfg_image_scale, **kwargs,
        )
        special = self._special_ids(tokenizer, config)
        # The public boundary: the ids fill their grid with image ids (checked once, here).
        sources = [
            (validate_image_token_ids(ids, side_h, side_w, special.image_token_offset, special.image_codebook_size,
                                      name=name), side_h, side_w)
            for ((name, ids, side_h, side_w),) in requests
        ]
        grids = sorted({(side_h, side_w) for _, side_h, side_w in sources})
        if len(grids) > 1:
            raise ValueError(f"A batch of edits shares one grid size; got {grids}: edit each size on its own.")
        h, w = grids[0]
        gen_length = self._image_gen_length(gen_length, h, w)
        guidance = _Guidance.editing(config.cfg_text_scale, config.cfg_image_scale, config.guidance_rescale)
        texts = instruction if batched else [instruction]
        samples = [list(build_editing_prompts(tokenizer, ids, side_h, side_w, text))[: guidance.num_branches]
                   for (ids, side_h, side_w), text in zip(sources, texts)]
        decoder = self._decode(samples, gen_length, config, guidance, special.mask_token_id,
                               special.image_token_offset, logit_rules=[self._image_ids_only(special)],
                               callback=callback, generator=generator)
        results = []
        for s, (branches, generated) in enumerate(zip(samples, decoder.outputs(cut_at_stop=False))):
            sequence = torch.cat([torch.tensor(branches[0], dtype=torch.long, device=generated.device), generated])
            results.append(LLaDAUniImageGenerationOutput(
                token_ids=generated[: h * w] - special.image_token_offset, h=h, w=w, sequences=sequence[None],
                num_forward_passes=decoder.nfe, **decoder.sprint_stats(s),
                **(decoder.scores(s, h * w) if config.output_scores else {}),
            ))
        return results if batched else results[0]


__all__ = [
    "LLaDAUniBlockScheduler",
    "LLaDAUniBlockSchedulerOutput",
    "LLaDAUniGenerationConfig",
    "LLaDAUniGenerationMixin",
    "LLaDAUniGenerateOutput",
    "LLaDAUniImageGenerationOutput",
    "LLaDAUniPrefixCache",
    "LLaDAUniUnderstandingOutput",
    "REMASKING_STRATEGIES",
]
