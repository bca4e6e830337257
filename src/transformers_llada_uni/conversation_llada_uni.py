# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""Conversations with pictures, on the engine's interleaved decoding (`generation_llada_uni`).

Nothing here denoises or switches between text and pictures: the engine's interleaved decoding
(`LLaDAUniGenerationMixin._decode_interleaved`, which thinking mode uses too) writes text spans and picture spans on one
sequence, parses the image headers the model writes and reuses finished blocks between spans. This module is what a
conversation adds on top:

- prompts: `messages` (transformers' chat format; content a string or text / image parts) rendered with the
  processor's chat template; pictures (given or generated earlier) are image blocks of ids in the prompt, and the
  assistant's earlier text parts keep the ids the model wrote (`token_ids`), so the prompt of turn n + 1 starts with
  exactly the ids of turn n. A picture's unconditional branch is the same conversation with the current request
  replaced by `<uncondition>`.
- history reuse: the engine's cache of finished blocks (keys / values of whole blocks, which block-causal attention
  makes independent of everything after them) is kept after each turn (`LLaDAUniPrefixCache`) and seeds the next
  turn's decode of a prompt that starts with the same ids, block-aligned from position 0; only the blocks that differ
  are run again. This is exact: the ids are the same with and without reuse (tests/test_conversations.py).
- outputs: segments, the history to continue, and step information for callbacks (`LLaDAUniStepInfo`).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from transformers.utils import ModelOutput

# The engine's prefix cache is a name of this module's API too (history reuse).
from .generation_llada_uni import LLaDAUniPrefixCache, _Guidance
from .processing_llada_uni import CHAT_TEMPLATE
from .prompting_llada_uni import (
    UNCONDITIONAL_TEXT,
    encode_text,
    image_block_ids,
    validate_image_token_ids,
)

if TYPE_CHECKING:
    from transformers import GenerationConfig, PreTrainedTokenizerBase
    from transformers.generation.streamers import BaseStreamer

    from .generation_llada_uni import LLaDAUniGenerationConfig, LLaDAUniGenerationMixin
    from .prompting_llada_uni import LLaDAUniSpecialTokenIds

_ROLES = ("system", "user", "assistant")


# ------------------------------------------------------------------------------------------------ outputs
@dataclass
class LLaDAUniChatHistory:
    """A conversation after a turn of [`~LLaDAUniGenerationMixin.chat`].

    Args:
        messages (`list[dict]`): the conversation, the assistant's reply appended (its content: the segments). Append
            the next user message and pass both to `chat` again.
        prefix_cache (`LLaDAUniPrefixCache`, *optional*): the finished blocks of the last decode (history reuse).
    """

    messages: list
    prefix_cache: LLaDAUniPrefixCache | None = None


@dataclass
class LLaDAUniStepInfo:
    """What a [`~LLaDAUniGenerationMixin.generate_interleaved`] / `chat` callback receives after every step.

    Args:
        kind (`str`): `"text"` or `"image"`, the span being filled.
        segment (`int`): index of the segment being filled (of sample 0 in a batch).
        step (`int`): the step within the block.
        block (`int`), num_blocks (`int`): the block (0-based, counted in this span) and the span's blocks.
        generated_ids (`torch.LongTensor` of shape `(samples, span_length)`): the span's ids, masks still in.
    """

    kind: str
    segment: int
    step: int
    block: int
    num_blocks: int
    generated_ids: torch.LongTensor


@dataclass
class LLaDAUniInterleavedOutput(ModelOutput):
    """Result of `generate_interleaved` and `chat` (one per sample).

    Args:
        segments (`list[dict]`): in order, chat-format content parts: `{"type": "text", "text": str, "token_ids":
            list[int]}` and `{"type": "image", "image": {"image_tokens": ids (codes + offset), "h": rows, "w":
            columns}}` (`image["image_tokens"]` minus `image_token_offset` are the picture's codes).
        sequences (`torch.LongTensor` of shape `(1, length)`): the prompt followed by everything generated.
        num_forward_passes (`int`): model forwards of the call (all spans of the batch).
        reused_tokens (`int`): prompt tokens whose keys / values came from the history instead of a forward.
        stopped (`bool`): a callback stopped generation (an unfinished picture is left out).
        history (`LLaDAUniChatHistory`, *optional*): with `chat`, the conversation to continue.
    """

    segments: list | None = None
    sequences: torch.LongTensor | None = None
    num_forward_passes: int | None = None
    reused_tokens: int | None = None
    stopped: bool | None = None
    history: LLaDAUniChatHistory | None = None


# ------------------------------------------------------------------------------------------------ prompts
_PLACEHOLDER = "\u0000LLADA_UNI_SPLICE_{}\u0000"
_PLACEHOLDER_RE = re.compile("\u0000LLADA_UNI_SPLICE_(\\d+)\u0000")


def _image_entry(part, where):
    image = part.get("image")
    if not isinstance(image, dict) or not all(key in image for key in ("image_tokens", "h", "w")):
        raise TypeError(
            f"{where} must carry its picture as image ids: `{{'type': 'image', 'image': processor.encode_images("
            f"picture, image_tokenizer)}}` (a dict with 'image_tokens', 'h', 'w'), got {type(image).__name__}; the "
            "interleaved pipeline encodes pictures for you."
        )
    return image


def build_conversation_prompt(tokenizer: PreTrainedTokenizerBase, messages: Sequence[dict],
                              special: LLaDAUniSpecialTokenIds, add_generation_prompt: bool = True,
                              chat_template: str | None = None) -> list[int]:
    """The prompt ids of a conversation: the processor's chat template around the messages, each image part's image
    block (`header + ids + <|/image|>`) and each text part's `token_ids` (the ids the model wrote) spliced in as ids,
    the text between them tokenised piece by piece (no BOS / EOS), as the understanding prompt is built.

    Args:
        tokenizer: the LLaDA2.0-Uni tokenizer.
        messages (`Sequence[dict]`): `{"role": "system" | "user" | "assistant", "content": str | list of parts}`;
            parts are `{"type": "text", "text": str}` (optionally `"token_ids"`) and `{"type": "image", "image":
            {"image_tokens", "h", "w"}}` (what `processor.encode_images` returns).
        special (`LLaDAUniSpecialTokenIds`): the resolved special ids (image range).
        add_generation_prompt (`bool`, defaults to `True`): end with the assistant's turn marker.
        chat_template (`str`, *optional*): defaults to the processor's template.
    """
    splices, rendered_messages = [], []
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in _ROLES:
            raise ValueError(f"`messages[{index}]` must be a dict with a role in {_ROLES}, got {message!r:.80}.")
        content = message.get("content")
        if isinstance(content, str):
            rendered_messages.append({"role": message["role"], "content": content})
            continue
        if not isinstance(content, (list, tuple)):
            raise TypeError(f"`messages[{index}]['content']` must be a string or a list of parts, got "
                            f"{type(content).__name__}.")
        text = ""
        for number, part in enumerate(content):
            where = f"`messages[{index}]['content'][{number}]`"
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text":
                if not isinstance(part.get("text"), str):
                    raise TypeError(f"{where} is a text part without a string 'text'.")
                if part.get("token_ids") is None:
                    text += part["text"]
                    continue
                ids = [int(t) for t in part["token_ids"]]
            elif kind == "image":
                image = _image_entry(part, where)
                ids = validate_image_token_ids(image["image_tokens"], image["h"], image["w"],
                                               special.image_token_offset, special.image_codebook_size,
                                               name=f"{where}['image']['image_tokens']")
                ids = image_block_ids(tokenizer, ids, image["h"], image["w"], unknown_sides="text")
            else:
                raise ValueError(f"{where} must be a text or an image part, got type {kind!r}.")
            text += _PLACEHOLDER.format(len(splices))
            splices.append(ids)
        rendered_messages.append({"role": message["role"], "content": text})
    rendered = tokenizer.apply_chat_template(rendered_messages, tokenize=False,
                                             add_generation_prompt=add_generation_prompt,
                                             chat_template=chat_template or CHAT_TEMPLATE)
    ids, last = [], 0
    for match in _PLACEHOLDER_RE.finditer(rendered):
        if match.start() > last:
            ids += encode_text(tokenizer, rendered[last : match.start()])
        ids += splices[int(match.group(1))]
        last = match.end()
    if last < len(rendered):
        ids += encode_text(tokenizer, rendered[last:])
    return ids


def build_conversation_unconditional_prompt(tokenizer: PreTrainedTokenizerBase, messages: Sequence[dict],
                                            special: LLaDAUniSpecialTokenIds,
                                            chat_template: str | None = None) -> list[int]:
    """The unconditional branch of a picture's guidance in a conversation: the same conversation with the last user
    message's content replaced by `<uncondition>` (thinking mode's rule: the request is replaced, the history kept)."""
    last_user = max((i for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") == "user"),
                    default=None)
    if last_user is None:
        raise ValueError("`messages` needs a user message to answer.")
    messages = list(messages[:last_user]) + [{"role": "user", "content": UNCONDITIONAL_TEXT}]
    return build_conversation_prompt(tokenizer, messages, special, chat_template=chat_template)


# ------------------------------------------------------------------------------------------------ turns
def _guided(config: LLaDAUniGenerationConfig) -> bool:
    return _Guidance.text_to_image(config.cfg_scale, config.guidance_rescale).guided


def _step_callback(callback: Callable[[LLaDAUniStepInfo], bool | None], block_length: int) -> Callable:
    """The engine's `span_callback` for a `LLaDAUniStepInfo` callback: True stops generation."""

    def for_span(kind, samples, length):
        first = samples[0]
        # The span's blocks on the canvas of the group's first sample (it need not start on a block boundary).
        num_blocks = -(-(len(first.ids) % block_length + length) // block_length)

        def call(step, block, ids):
            info = LLaDAUniStepInfo(kind=kind, segment=len(first.segments), step=step, block=block,
                                    num_blocks=num_blocks, generated_ids=ids)
            return callback(info) is True

        return call

    return for_span


def interleaved_generate(model: LLaDAUniGenerationMixin, tokenizer: PreTrainedTokenizerBase,
                         config: LLaDAUniGenerationConfig, special: LLaDAUniSpecialTokenIds,
                         prompts: Sequence[Sequence[int]], unconditional: Sequence[Sequence[int]] | None,
                         prefixes: Sequence[LLaDAUniPrefixCache | None] | None = None,
                         image_size: tuple[int, int] | None = None, final_image: bool = False,
                         logit_rules: Sequence[Callable] = (),
                         callback: Callable[[LLaDAUniStepInfo], bool | None] | None = None,
                         streamer: BaseStreamer | None = None, generator: torch.Generator | None = None,
                         keep_history: bool = False) -> list[LLaDAUniInterleavedOutput]:
    """The engine's interleaved decoding after each prompt, as outputs (the callers validate).

    `config` is the call's text settings; a picture uses the same with `steps = image_steps`. `unconditional[s]` is
    the unconditional prompt (before the picture's header) of sample `s`, or None for unguided pictures. With
    `keep_history`, each output's `history.prefix_cache` holds the finished blocks for the next turn.
    """
    image_config = copy.deepcopy(config)
    image_config.steps = config.image_steps
    samples, nfe = model._decode_interleaved(
        tokenizer, special, prompts, unconditional, config, image_config, prefixes=prefixes, image_size=image_size,
        final_image=final_image, logit_rules=logit_rules,
        span_callback=_step_callback(callback, config.block_length) if callback is not None else None,
        streamer=streamer, generator=generator, keep_history=keep_history,
    )
    return [
        LLaDAUniInterleavedOutput(
            segments=sample.segments, sequences=torch.tensor([sample.ids], device=model.device),
            num_forward_passes=nfe, reused_tokens=sample.reused, stopped=sample.stopped,
            history=LLaDAUniChatHistory(messages=[], prefix_cache=sample.prefix) if keep_history else None,
        )
        for sample in samples
    ]


def is_conversation(value: Any) -> bool:
    """True for a list of message dicts (one conversation)."""
    return isinstance(value, (list, tuple)) and bool(value) and all(isinstance(m, dict) for m in value)


def chat_turn(model: LLaDAUniGenerationMixin, tokenizer: PreTrainedTokenizerBase, config: LLaDAUniGenerationConfig,
              special: LLaDAUniSpecialTokenIds, conversations: Sequence[Sequence[dict]],
              histories: Sequence[LLaDAUniChatHistory | None], image_size: tuple[int, int] | None = None,
              logit_rules: Sequence[Callable] = (), callback: Callable[[LLaDAUniStepInfo], bool | None] | None = None,
              streamer: BaseStreamer | None = None, generator: torch.Generator | None = None,
              chat_template: str | None = None) -> list[LLaDAUniInterleavedOutput]:
    """One assistant turn for each conversation (the callers validate the settings)."""
    prompts = [build_conversation_prompt(tokenizer, messages, special, chat_template=chat_template)
               for messages in conversations]
    unconditional = None
    if _guided(config):
        unconditional = [build_conversation_unconditional_prompt(tokenizer, messages, special, chat_template)
                         for messages in conversations]
    prefixes = [history.prefix_cache if history is not None else None for history in histories]
    outputs = interleaved_generate(model, tokenizer, config, special, prompts, unconditional, prefixes=prefixes,
                                   image_size=image_size, logit_rules=logit_rules, callback=callback,
                                   streamer=streamer, generator=generator, keep_history=True)
    for messages, output in zip(conversations, outputs):
        reply = {"role": "assistant", "content": list(output.segments)}
        output.history = LLaDAUniChatHistory(messages=list(messages) + [reply],
                                             prefix_cache=output.history.prefix_cache)
    return outputs


class LLaDAUniConversationMixin:
    """`chat` and `generate_interleaved` for a model with [`LLaDAUniGenerationMixin`] (the engine): thin entry points
    that resolve settings as the other modes do; prompts, spans and history reuse are this module's functions."""

    def _interleaved_settings(self, tokenizer, what, generation_config, kwargs):
        tokenizer = self._resolve_tokenizer(tokenizer, what)
        config = self._generation_settings(generation_config, mode="text", **kwargs)
        if config.stop_strings or config.min_new_tokens or config.min_length:
            raise ValueError(f"`{what}` does not support `stop_strings`, `min_new_tokens` or `min_length`; give "
                             "`logit_rules` (positions count from the start of the output) instead.")
        return tokenizer, config, self._special_ids(tokenizer, config)

    @staticmethod
    def _image_size(image_size):
        if image_size is None:
            return None
        if (not isinstance(image_size, (list, tuple)) or len(image_size) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in image_size)):
            raise ValueError(f"`image_size` must be a pair of positive ints (rows, columns of codes), got "
                             f"{image_size!r}.")
        return tuple(image_size)

    def generate_interleaved(self, prompt: str | Sequence[dict] | Sequence[int] | torch.LongTensor,
                             tokenizer: PreTrainedTokenizerBase | None = None,
                             unconditional_ids: Sequence[int] | torch.LongTensor | None = None,
                             image_size: tuple[int, int] | None = None, final_image: bool = False,
                             steps: int | None = None, image_steps: int | None = None,
                             max_new_tokens: int | None = None, cfg_scale: float | None = None,
                             generation_config: GenerationConfig | None = None, logit_rules: Sequence[Callable] = (),
                             callback: Callable[[LLaDAUniStepInfo], bool | None] | None = None,
                             streamer: BaseStreamer | None = None, generator: torch.Generator | None = None,
                             **kwargs: Any) -> LLaDAUniInterleavedOutput:
        """Interleaved text-and-image generation: text until EOS or the length limit, and wherever the model opens a
        picture (an image header ending in `<boi>`) its `h * w` codes with image ids only and text-to-image guidance,
        then `<|/image|>` and text again (the engine's interleaved decoding, see `generation_llada_uni`).
        `final_image=True` is thinking mode's form: the text, then one picture whatever ended the text, then the end
        (`generate_image(..., mode="thinking")` is this call on the thinking prompt).

        Args:
            prompt: a string (one user turn of the chat template), a conversation (`messages`, see `chat`), or the
                prompt ids (`list[int]` / 1-D tensor), with `unconditional_ids` the unconditional branch's ids (the
                guidance of pictures; without it pictures are unguided).
            tokenizer ([`PreTrainedTokenizerBase`], *optional*): defaults to the one set with `set_tokenizer`.
            unconditional_ids (`list[int]` or 1-D `torch.LongTensor`, *optional*): with prompt ids, the unconditional
                branch's ids.
            image_size (`tuple[int, int]`, *optional*): force every picture's grid (codes); by default the header's.
                A header whose sides are not size tokens gets the default grid (`image_h` x `image_w`), with a warning.
            final_image (`bool`, defaults to `False`): the output is text followed by one picture: the text ends at
                the first `<boi>`, EOS or the length limit, and the picture (grid `image_size`, else the header's or
                the default) comes after it even when the model opened none (with a warning); nothing follows it.
            steps, image_steps (`int`, *optional*): steps per block of text and of pictures.
            max_new_tokens (`int`, *optional*): every generated id counts (default `gen_length`); an opened picture
                is always finished.
            cfg_scale (`float`, *optional*): pictures' guidance scale (guidance off at 1.0).
            generation_config (`GenerationConfig`, *optional*), kwargs: other settings, as in `generate`.
            logit_rules (`Sequence[Callable]`): `rule(logits, positions) -> logits` on text spans, `positions` counted
                from the start of the output (e.g. to force a header at a chosen position).
            callback (`Callable[[LLaDAUniStepInfo], bool | None]`, *optional*): after every step of every span
                (pictures report `block` / `num_blocks`); returning True stops generation.
            streamer (`BaseStreamer`, *optional*): receives the prompt, then the text spans' blocks.
            generator (`torch.Generator`, *optional*): randomness for sampling.

        Returns a [`LLaDAUniInterleavedOutput`] (`.segments`, `.sequences`).
        """
        tokenizer, config, special = self._interleaved_settings(
            tokenizer, "generate_interleaved", generation_config,
            dict(steps=steps, image_steps=image_steps, max_new_tokens=max_new_tokens, cfg_scale=cfg_scale, **kwargs))
        guided = _guided(config)
        if not isinstance(final_image, bool):
            raise TypeError(f"`final_image` must be a bool, got {type(final_image).__name__}.")
        if isinstance(prompt, str) or is_conversation(prompt):
            messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
            ids = build_conversation_prompt(tokenizer, messages, special)
            if unconditional_ids is None and guided:
                unconditional_ids = build_conversation_unconditional_prompt(tokenizer, messages, special)
        else:
            ids = prompt.tolist() if isinstance(prompt, torch.Tensor) else prompt
            if not isinstance(ids, (list, tuple)) or not ids or not all(isinstance(t, int) for t in ids):
                raise TypeError("`prompt` must be a string, a list of messages or a non-empty flat list of ids, got "
                                f"{type(prompt).__name__}.")
        if isinstance(unconditional_ids, torch.Tensor):
            unconditional_ids = unconditional_ids.tolist()
        if guided and unconditional_ids is None:
            raise ValueError("Guided pictures (`cfg_scale` != 1) from prompt ids need `unconditional_ids`; or set "
                             "`cfg_scale=1.0`.")
        return interleaved_generate(
            self, tokenizer, config, special, [list(ids)], [list(unconditional_ids)] if guided else None,
            image_size=self._image_size(image_size), final_image=final_image, logit_rules=logit_rules,
            callback=callback, streamer=streamer, generator=generator,
        )[0]

    def chat(self, messages: Sequence[dict] | Sequence[Sequence[dict]],
             history: LLaDAUniChatHistory | Sequence[LLaDAUniChatHistory | None] | None = None,
             tokenizer: PreTrainedTokenizerBase | None = None, image_size: tuple[int, int] | None = None,
             steps: int | None = None,
             image_steps: int | None = None, max_new_tokens: int | None = None, cfg_scale: float | None = None,
             generation_config: GenerationConfig | None = None, logit_rules: Sequence[Callable] = (),
             callback: Callable[[LLaDAUniStepInfo], bool | None] | None = None, streamer: BaseStreamer | None = None,
             generator: torch.Generator | None = None,
             **kwargs: Any) -> LLaDAUniInterleavedOutput | list[LLaDAUniInterleavedOutput]:
        """One assistant turn of a conversation with pictures; the answer is interleaved text and pictures.

        Args:
            messages: the whole conversation (transformers' chat format): `{"role", "content"}` dicts, content a
                string or a list of `{"type": "text", "text"}` and `{"type": "image", "image":
                processor.encode_images(picture, image_tokenizer)}` parts. A list of conversations is a batch.
            history (`LLaDAUniChatHistory`, *optional*): the previous turn's `output.history` (a list for a batch):
                the keys / values of its finished blocks are reused where the new prompt starts with the same ids
                (exact). Continue with `model.chat(output.history.messages + [next_user_message],
                history=output.history)`.
            Other arguments: as in [`~LLaDAUniConversationMixin.generate_interleaved`].

        Returns a [`LLaDAUniInterleavedOutput`] (a list for a batch): `.segments` (the reply), `.history`.
        """
        batched = isinstance(messages, (list, tuple)) and bool(messages) and all(
            is_conversation(conversation) for conversation in messages)
        if not batched and not is_conversation(messages):
            raise TypeError("`messages` must be a list of message dicts (one conversation) or a list of such lists.")
        conversations = list(messages) if batched else [messages]
        histories = history if batched and history is not None else [history] * (1 if not batched else len(messages))
        if len(histories) != len(conversations):
            raise ValueError(f"Got {len(conversations)} conversations and {len(histories)} histories.")
        if streamer is not None and len(conversations) > 1:
            raise ValueError("A streamer follows one conversation: give one, not a batch.")
        tokenizer, config, special = self._interleaved_settings(
            tokenizer, "chat", generation_config,
            dict(steps=steps, image_steps=image_steps, max_new_tokens=max_new_tokens, cfg_scale=cfg_scale, **kwargs))
        outputs = chat_turn(self, tokenizer, config, special, conversations, histories,
                            image_size=self._image_size(image_size), logit_rules=logit_rules, callback=callback,
                            streamer=streamer, generator=generator)
        return outputs if batched else outputs[0]


__all__ = [
    "LLaDAUniChatHistory",
    "LLaDAUniConversationMixin",
    "LLaDAUniInterleavedOutput",
    "LLaDAUniPrefixCache",
    "LLaDAUniStepInfo",
    "build_conversation_prompt",
    "build_conversation_unconditional_prompt",
]
