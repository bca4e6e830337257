# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""End-to-end interleaved text-and-image generation and conversations with pictures.

[`LLaDAUniInterleavedPipeline`] encodes the pictures of the messages (paths, PIL images, or image ids already), runs
`model.chat` (text spans and picture spans on the one block-diffusion engine, history reused between turns) and
decodes the pictures the model wrote with the image decoder. It shares the parts, folder layout and helpers of the
pipelines in `pipeline_llada_uni` (`LLaDAUniInterleavedPipeline(**t2i.components)` works).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from diffusers.utils import BaseOutput

from .pipeline_llada_uni import _LLaDAUniPipelineBase

if TYPE_CHECKING:
    from transformers.generation.streamers import BaseStreamer

    from transformers_llada_uni import LLaDAUniChatHistory


@dataclass
class LLaDAUniInterleavedPipelineOutput(BaseOutput):
    r"""
    Output of [`LLaDAUniInterleavedPipeline`].

    Args:
        segments (`list[dict]`): the reply, in order: `{"type": "text", "text", "token_ids"}` and `{"type": "image",
            "image": decoded picture (per `output_type`; `None` for `"codes"`), "image_tokens": codes without
            offset (`torch.LongTensor`), "h", "w"}`.
        text (`str`): the reply's text parts joined.
        images (`list`): the decoded pictures, in order (as in `segments`).
        history: the conversation to continue (`LLaDAUniChatHistory`; pass it back with the next messages).
    """

    segments: list
    text: str
    images: list
    history: Any = None


class LLaDAUniInterleavedPipeline(_LLaDAUniPipelineBase):
    r"""
    Conversations with pictures in any turn, answered with interleaved text and pictures: one assistant turn per
    call. Pictures in the messages go through the understanding resize and the image tokenizer (or are given as
    `{"image_tokens", "h", "w"}` ids); the pictures the model writes are decoded by the image decoder.
    """

    def _encode_messages(self, messages, image_kwargs):
        """The messages with every picture part holding image ids (the history's pictures are ids already)."""
        encoded = []
        for index, message in enumerate(messages):
            content = message.get("content") if isinstance(message, dict) else None
            if not isinstance(content, (list, tuple)):
                encoded.append(message)
                continue
            parts = []
            for part in content:
                if isinstance(part, dict) and part.get("type") == "image":
                    picture = part.get("image", part.get("path", part.get("url")))
                    if isinstance(picture, dict):
                        picture = self._encoded_from_dict(picture)
                    elif picture is not None:
                        if not isinstance(picture, (str, os.PathLike)) and not hasattr(picture, "convert"):
                            raise TypeError(f"`messages[{index}]` has an image part holding a "
                                            f"{type(picture).__name__}; give a path, a PIL image or image ids.")
                        (picture,), = self._source_image_sets(picture, None, "understand", image_kwargs)
                    part = {"type": "image", "image": picture}
                parts.append(part)
            encoded.append({**message, "content": parts})
        return encoded

    @torch.no_grad()
    def __call__(
        self,
        messages: Sequence[dict] | str,
        history: LLaDAUniChatHistory | None = None,
        image_size: tuple[int, int] | None = None,
        max_new_tokens: int | None = None,
        steps: int | None = None,
        image_steps: int | None = None,
        block_length: int | None = None,
        cfg_scale: float | None = None,
        decoder: str | None = None,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        output_type: str = "pil",
        image_kwargs: dict | None = None,
        generation_kwargs: dict | None = None,
        decoder_kwargs: dict | None = None,
        callback: Callable | None = None,
        streamer: BaseStreamer | None = None,
        generator: torch.Generator | None = None,
        return_dict: bool = True,
    ) -> LLaDAUniInterleavedPipelineOutput | tuple:
        r"""
        Args:
            messages: the conversation (transformers' chat format; image parts hold a path, a PIL image or image ids
                under `"image"`), or a string (one user turn).
            history: the previous call's `output.history` (its finished blocks are reused; exact).
            image_size: force every picture's grid (codes); by default the grid the model's header names.
            max_new_tokens, steps, image_steps, block_length, cfg_scale: the model's settings (see
                `model.generate_interleaved`); unset ones come from the model's generation config.
            decoder, num_inference_steps, guidance_scale, decoder_kwargs: the image decoder's (see the text-to-image
                pipeline).
            output_type: `"pil"`, `"np"`, `"pt"`, `"latent"` or `"codes"` (pictures not decoded).
            image_kwargs: options of the image processor's understanding resize (pictures in the messages).
            callback: `callback(LLaDAUniStepInfo) -> bool | None` after every step; True stops generation.
            streamer: a transformers streamer for the text spans (block by block).
            generator: randomness of the model's sampling and of the decoder's noise.
        """
        if output_type not in ("pil", "np", "pt", "latent", "codes"):
            raise ValueError(f"`output_type` must be one of ['pil', 'np', 'pt', 'latent', 'codes'], got {output_type!r}.")
        if output_type != "codes":
            self.get_decoder(decoder).check_inputs(output_type, num_inference_steps, guidance_scale, None)
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        messages = self._encode_messages(list(messages), image_kwargs)
        self._onload(self.model)
        settings = {key: value for key, value in dict(max_new_tokens=max_new_tokens, steps=steps,
                                                      image_steps=image_steps, block_length=block_length,
                                                      cfg_scale=cfg_scale).items() if value is not None}
        output = self.model.chat(messages, history=history, tokenizer=self.tokenizer, image_size=image_size,
                                 callback=callback, streamer=streamer, generator=self._lm_generator(generator),
                                 **settings, **self._generation_kwargs(generation_kwargs))
        offset = self.image_token_offset
        pictures = [segment for segment in output.segments if segment["type"] == "image"]
        codes = [torch.tensor(p["image"]["image_tokens"]) - offset for p in pictures]
        grids = [(p["image"]["h"], p["image"]["w"]) for p in pictures]
        images = self._decode_codes(codes, grids, decoder, num_inference_steps, guidance_scale, generator,
                                    output_type, dict(decoder_kwargs or {})) if codes else []
        images = list(images) if images is not None else [None] * len(codes)
        self.maybe_free_model_hooks()
        segments, decoded = [], iter(zip(images, codes))
        for segment in output.segments:
            if segment["type"] == "image":
                image, picture_codes = next(decoded)
                segment = {"type": "image", "image": image, "image_tokens": picture_codes,
                           "h": segment["image"]["h"], "w": segment["image"]["w"]}
            segments.append(segment)
        text = "".join(segment["text"] for segment in segments if segment["type"] == "text")
        if not return_dict:
            return (segments, text, images, output.history)
        return LLaDAUniInterleavedPipelineOutput(segments=segments, text=text, images=images, history=output.history)


__all__ = ["LLaDAUniInterleavedPipeline", "LLaDAUniInterleavedPipelineOutput"]
