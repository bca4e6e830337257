# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""Processor of LLaDA2.0-Uni: tokenizer + image processor, every prompt the model uses, and decoding of its output.

Prompt layouts are not defined here: every builder calls the pure functions of `prompting_llada_uni`, which the
generation methods use too, so a prompt built here is byte-identical to the one the model builds itself.

An image enters a prompt as image ids (the SigLIP-VQ codes plus `image_token_offset`), so turning a picture into a
prompt needs the image tokenizer model; [`LLaDAUniProcessor.encode_images`] runs it.

Example (understanding, then editing):

```python
>>> processor = AutoProcessor.from_pretrained(checkpoint)
>>> image = processor.encode_images(picture, image_tokenizer, mode="understand")
>>> answer = model.understand_image(**image, question="Describe this image.", tokenizer=processor.tokenizer)

>>> image = processor.encode_images(picture, image_tokenizer, mode="edit")
>>> edited = model.edit_image(**image, instruction="Make it a watercolor painting.", tokenizer=processor.tokenizer)
```
"""

import os
from collections.abc import Sequence
from types import SimpleNamespace

import numpy as np
from transformers.feature_extraction_utils import BatchFeature
from transformers.processing_utils import ProcessorMixin

from .image_processing_llada_uni import LLaDAUniImageProcessor, _as_prompts
from .prompting_llada_uni import (
    BOI_TOKEN,
    build_editing_prompts,
    build_text_to_image_prompt,
    build_text_to_image_unconditional_prompt,
    build_thinking_image_prompt,
    build_thinking_prompt,
    build_understanding_prompt,
    encode_text,
    get_special_token_ids,
    image_grid_size,
    pad_sequences,
    parse_image_header,
    validate_image_token_ids,
)


class LLaDAUniEncodedImage(dict):
    """`{"image_tokens": ids, "h": rows, "w": columns}`: one picture as image ids (codes + `image_token_offset`, raster
    order). Its keys are the argument names of `understand_image` / `edit_image`, so `**image` passes it on;
    `image["image_token_ids"]` (the original implementation's name) reads the same ids."""

    def __missing__(self, key):
        if key == "image_token_ids":
            return self["image_tokens"]
        raise KeyError(key)


class LLaDAUniProcessor(ProcessorMixin):
    r"""
    Wraps a [`LLaDAUniImageProcessor`] and the LLaDA2.0-Uni tokenizer.

    Args:
        image_processor ([`LLaDAUniImageProcessor`]):
            Pictures -> patches for the image tokenizer model.
        tokenizer ([`PreTrainedTokenizerBase`]):
            The LLaDA2.0-Uni tokenizer (its special tokens: `<|mask|>`, `<|image|>`, `<boi>`, `<|reserved_token_N|>`).
        chat_template (`str`, *optional*):
            Chat template; the tokenizer's is used when not given.
        image_token_offset (`int`, *optional*):
            Id of image code 0. Read from the tokenizer's `<IMAGE0>` token when not given.
        image_codebook_size (`int`, *optional*):
            Number of image codes. `len(tokenizer) - image_token_offset` when not given.

    Prompt builders return a [`BatchFeature`] with `input_ids` (and the other guidance branches' ids) as a batch of
    one prompt, or of several when lists are given; with `return_tensors`, prompts of different lengths are
    left-padded with the tokenizer's pad id and an `attention_mask` (0 on padding) is added.
    """

    model_input_names = ["input_ids", "attention_mask", "pixel_values", "image_grid_thw"]

    def __init__(
        self,
        image_processor=None,
        tokenizer=None,
        chat_template=None,
        image_token_offset: int | None = None,
        image_codebook_size: int | None = None,
        **kwargs,
    ):
        if image_processor is None:
            image_processor = LLaDAUniImageProcessor()
        if tokenizer is None:
            raise ValueError("LLaDAUniProcessor needs a `tokenizer` (the LLaDA2.0-Uni tokenizer).")
        if chat_template is None:
            chat_template = getattr(tokenizer, "chat_template", None)
        super().__init__(image_processor, tokenizer, chat_template=chat_template)
        for name, value in (("image_token_offset", image_token_offset), ("image_codebook_size", image_codebook_size)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
                raise ValueError(f"`{name}` must be a positive integer or None, got {value!r}.")
        self.image_token_offset = image_token_offset
        self.image_codebook_size = image_codebook_size
        # Fail now, not at the first prompt, if the tokenizer lacks what LLaDA2.0-Uni prompts need.
        self.special_token_ids = get_special_token_ids(
            tokenizer, SimpleNamespace(image_token_offset=image_token_offset, image_codebook_size=image_codebook_size)
        )

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        r"""
        As [`~ProcessorMixin.from_pretrained`]. A released LLaDA2.0-Uni folder (tokenizer at the top, the GLM-Image
        style `preprocessor_config.json` in `image_tokenizer/`) is read as well.
        """
        path = os.fspath(pretrained_model_name_or_path)
        subfolder = kwargs.get("subfolder") or ""
        root = os.path.join(path, subfolder)
        released_preprocessor = os.path.join(root, "image_tokenizer", "preprocessor_config.json")
        own_files = ("processor_config.json", "preprocessor_config.json")
        if (
            os.path.isdir(root)
            and not any(os.path.isfile(os.path.join(root, name)) for name in own_files)
            and os.path.isfile(released_preprocessor)
        ):
            from transformers import AutoTokenizer

            image_processor = LLaDAUniImageProcessor.from_pretrained(os.path.join(root, "image_tokenizer"))
            tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
            return cls(image_processor=image_processor, tokenizer=tokenizer)
        return super().from_pretrained(pretrained_model_name_or_path, **kwargs)

    # ---------------------------------------------------------------------------------------------------- images --
    def __call__(self, images=None, text=None, mode: str | None = None, return_tensors=None, **kwargs) -> BatchFeature:
        r"""
        Pictures -> `pixel_values` + `image_grid_thw` for the image tokenizer model (see [`LLaDAUniImageProcessor`];
        `mode` is `"understand"`, `"edit"` or `"edit_resize_crop"`), and/or plain text -> `input_ids` (tokenised
        as the prompts' pieces are: no BOS/EOS, no chat template). Full prompts come from the `build_*` methods.
        """
        if images is None and text is None:
            raise ValueError("Give `images`, `text` or both.")
        data = {}
        if images is not None:
            data.update(self.image_processor(images, mode=mode, **kwargs))
        if text is not None:
            texts = [text] if isinstance(text, str) else list(text)
            data.update(self._batch([encode_text(self.tokenizer, t) for t in texts], "input_ids", return_tensors))
        return BatchFeature(data=data, tensor_type=return_tensors)

    def encode_images(self, images, image_tokenizer, mode: str = "understand", **image_kwargs):
        r"""
        Pictures -> image ids ready for the model: runs the image processor and `image_tokenizer` (a
        [`LLaDAUniImageVQModel`]) and adds `image_token_offset`.

        Returns, for one picture, a dict `{"image_tokens": list[int], "h": rows, "w": columns}` (image ids in raster
        order; the argument names of `understand_image` / `edit_image`, so `model.understand_image(**image, ...)`
        works); for a list (or list of lists) of pictures, a list (of lists) of such dicts. All pictures go through
        the image tokenizer in one batched call.
        """
        if image_tokenizer is None or not hasattr(image_tokenizer, "encode"):
            raise TypeError(
                f"`image_tokenizer` must be a LLaDAUniImageVQModel, got {type(image_tokenizer).__name__}."
            )
        codebook = getattr(getattr(image_tokenizer, "config", None), "codebook_size", None)
        if codebook is not None and codebook > self.special_token_ids.image_codebook_size:
            raise ValueError(
                f"The image tokenizer has {codebook} codes but the vocabulary holds only "
                f"{self.special_token_ids.image_codebook_size} image ids: they do not belong together."
            )
        prompts = _as_prompts(images)
        single = not isinstance(images, (list, tuple)) and len(prompts) == 1
        inputs = self.image_processor(prompts, mode=mode, return_tensors="pt", **image_kwargs)
        output = image_tokenizer.encode(inputs["pixel_values"], inputs["image_grid_thw"])
        offset = self.special_token_ids.image_token_offset
        encoded = [
            LLaDAUniEncodedImage(
                image_tokens=(grid.flatten() + offset).tolist(), h=int(grid.shape[0]), w=int(grid.shape[1])
            )
            for grid in output.codes_per_image()
        ]
        if single:
            return encoded[0]
        nested, start = [], 0
        items = images if isinstance(images, (list, tuple)) else [None] * len(prompts)
        for item, prompt_images in zip(items, prompts):
            group = encoded[start : start + len(prompt_images)]
            start += len(prompt_images)
            nested.append(group if isinstance(item, (list, tuple)) else group[0])
        return nested

    # --------------------------------------------------------------------------------------------------- prompts --
    def _image_ids(self, image, name: str = "image_tokens") -> tuple[list[int], int, int]:
        keys = set(image) if isinstance(image, dict) else set()
        ids_key = "image_tokens" if "image_tokens" in keys else "image_token_ids"
        if not {ids_key, "h", "w"} <= keys:
            raise TypeError(
                "An image must be a dict with `image_tokens`, `h` and `w` (what `encode_images` returns), got "
                f"{type(image).__name__}{' with keys ' + str(sorted(keys)) if isinstance(image, dict) else ''}."
            )
        ids = validate_image_token_ids(
            image[ids_key], image["h"], image["w"],
            self.special_token_ids.image_token_offset, self.special_token_ids.image_codebook_size, name=name,
        )
        return ids, int(image["h"]), int(image["w"])

    def _batch(self, sequences: list[list[int]], name: str, return_tensors) -> dict:
        if return_tensors is None:
            return {name: sequences}
        # The tokenizer's pad id, else EOS (the one resolver's order when the config sets none).
        ids, mask = pad_sequences(sequences, self.special_token_ids.pad_token_id, side="left")
        prefix = name[: -len("input_ids")]
        return {name: np.asarray(ids, dtype=np.int64), f"{prefix}attention_mask": np.asarray(mask, dtype=np.int64)}

    @staticmethod
    def _as_list(value, name):
        if isinstance(value, (list, tuple)):
            if not value:
                raise ValueError(f"`{name}` is an empty list.")
            return list(value), False
        return [value], True

    def _pair(self, images, texts, image_name, text_name, several: bool = False):
        """One image (or, with `several=True`, one list of images) per text; one image is shared by all texts."""
        images, _ = self._as_list(images, image_name) if not isinstance(images, dict) else ([images], True)
        for index, image in enumerate(images):
            if several and isinstance(image, (list, tuple)):
                # A list inside the batch is one prompt's images.
                if not image:
                    raise ValueError(f"`{image_name}[{index}]` is an empty list: a prompt needs at least one image.")
                for position, part in enumerate(image):
                    self._image_ids(part, name=f"{image_name}[{index}][{position}]['image_tokens']")
            else:
                self._image_ids(image)
        texts, _ = self._as_list(texts, text_name)
        if len(images) == 1 and len(texts) > 1:
            images = images * len(texts)
        if len(images) != len(texts):
            raise ValueError(f"Got {len(images)} images but {len(texts)} {text_name}s; give one image per prompt.")
        return images, texts

    def build_understanding_prompt(
        self, image, question, use_chat_template: bool = False, system_prompt: str | None = None, return_tensors=None
    ) -> BatchFeature:
        r"""
        Understanding prompt(s): `header + image ids + <|/image|> + question` as the original (no system prompt, no
        chat template), or with `use_chat_template=True` the image block and question as one user turn of the chat
        template (plus `system_prompt`) with the assistant turn opened. A prompt with several images has their blocks
        one after another, in the given order, before the question.

        image: from [`encode_images`]: a dict (one prompt, one image), a list of dicts (a batch, one image per prompt)
            or a list whose items may be lists of dicts (that prompt's images: `[[a, b]]` is one prompt with two
            images, `[[a, b], c]` two prompts). One image or one list of images is shared by all questions.
        question (`str` or list of `str`).
        """
        images, questions = self._pair(image, question, "image", "question", several=True)
        prompts = []
        for img, q in zip(images, questions):
            parts = [self._image_ids(part) for part in (img if isinstance(img, (list, tuple)) else [img])]
            # One image given as one-element lists builds the same prompt as the plain form.
            ids, h, w = ([part[i] for part in parts] for i in range(3))
            prompts.append(build_understanding_prompt(self.tokenizer, ids, h, w, q, use_chat_template, system_prompt))
        return BatchFeature(data=self._batch(prompts, "input_ids", return_tensors), tensor_type=return_tensors)

    def build_text_to_image_prompt(
        self, prompt, image_h: int = 1024, image_w: int = 1024, thinking: bool = False, return_tensors=None
    ) -> BatchFeature:
        r"""
        Text-to-image prompt(s) for a requested picture size: `input_ids` (system turn + prompt + assistant turn +
        image header for the `(image_h // 2) // 16 x (image_w // 2) // 16` code grid) and `unconditional_input_ids`
        (the guidance branch with the prompt replaced by `<uncondition>`), plus `image_grid_thw`. `thinking=True`
        uses the thinking system prompt (see also [`build_thinking_prompt`]).
        """
        prompts, _ = self._as_list(prompt, "prompt")
        h, w = image_grid_size(image_h, image_w)
        conditional = [build_text_to_image_prompt(self.tokenizer, p, h, w, thinking=thinking) for p in prompts]
        unconditional = build_text_to_image_unconditional_prompt(self.tokenizer, h, w, thinking=thinking)
        data = self._batch(conditional, "input_ids", return_tensors)
        data.update(self._batch([unconditional] * len(prompts), "unconditional_input_ids", return_tensors))
        data["image_grid_thw"] = [[1, h, w]] * len(prompts)
        return BatchFeature(data=data, tensor_type=return_tensors)

    def build_editing_prompts(self, image, instruction, return_tensors=None) -> BatchFeature:
        r"""
        The three editing branches: `input_ids` (system turn + image block + instruction + assistant turn + header),
        `no_text_input_ids` (instruction replaced by `<uncondition>`) and `no_image_input_ids` (a bare `<|image|>`
        instead of the image block), plus `image_grid_thw` (output grid = input grid).
        """
        images, instructions = self._pair(image, instruction, "image", "instruction")
        branches = {"input_ids": [], "no_text_input_ids": [], "no_image_input_ids": []}
        grids = []
        for img, text in zip(images, instructions):
            ids, h, w = self._image_ids(img)
            for key, built in zip(branches, build_editing_prompts(self.tokenizer, ids, h, w, text)):
                branches[key].append(built)
            grids.append([1, h, w])
        data = {}
        for key, sequences in branches.items():
            data.update(self._batch(sequences, key, return_tensors))
        data["image_grid_thw"] = grids
        return BatchFeature(data=data, tensor_type=return_tensors)

    def build_thinking_prompt(self, prompt, return_tensors=None) -> BatchFeature:
        r"""Phase 1 of thinking mode: thinking system turn + prompt + assistant turn (the model then writes its
        reasoning and the image header)."""
        prompts, _ = self._as_list(prompt, "prompt")
        sequences = [build_thinking_prompt(self.tokenizer, p) for p in prompts]
        return BatchFeature(data=self._batch(sequences, "input_ids", return_tensors), tensor_type=return_tensors)

    def build_thinking_image_prompt(
        self, prompt: str, thinking_ids: Sequence[int], image_h: int = 1024, image_w: int = 1024, return_tensors=None
    ) -> BatchFeature:
        r"""Phase 2 of thinking mode: the phase-1 prompt + the model's reasoning ids + the requested header, and the
        unconditional branch (thinking system prompt, `<uncondition>`, requested header)."""
        h, w = image_grid_size(image_h, image_w)
        if hasattr(thinking_ids, "tolist"):
            thinking_ids = thinking_ids.tolist()
        conditional = build_thinking_image_prompt(self.tokenizer, prompt, thinking_ids, h, w)
        unconditional = build_text_to_image_unconditional_prompt(self.tokenizer, h, w, thinking=True)
        data = self._batch([conditional], "input_ids", return_tensors)
        data.update(self._batch([unconditional], "unconditional_input_ids", return_tensors))
        data["image_grid_thw"] = [[1, h, w]]
        return BatchFeature(data=data, tensor_type=return_tensors)

    # -------------------------------------------------------------------------------------------------- decoding --
    def decode_text(self, ids, skip_special_tokens: bool = True, **kwargs) -> str:
        r"""Generated ids -> text. Image ids (codes) are dropped: they are not text."""
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        ids = list(ids)
        if ids and isinstance(ids[0], (list, tuple)):
            raise ValueError("`decode_text` takes one sequence; use `batch_decode` for a batch.")
        offset = self.special_token_ids.image_token_offset
        text_ids = [int(t) for t in ids if int(t) < offset]
        return self.tokenizer.decode(text_ids, skip_special_tokens=skip_special_tokens, **kwargs)

    def decode_image_tokens(self, ids, h: int | None = None, w: int | None = None) -> dict:
        r"""
        Generated ids -> image codes and grid: `{"image_tokens": LongTensor (h * w,), "grid_size": (h, w)}` (the
        arguments of the decoder pipeline). `ids` are either exactly the `h * w` image ids, or a sequence that holds
        an image header (`<|image|><|reserved_token_h|><|reserved_token_w|><boi>`) followed by the image ids; the
        last header in the sequence is used, and `h`, `w` are read from it when not given.
        """
        import torch

        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        ids = [int(t) for t in ids]
        boi = self.special_token_ids.boi_token_id
        if boi in ids:
            position = len(ids) - 1 - ids[::-1].index(boi)
            header = parse_image_header(self.tokenizer, ids[: position + 1])
            if header is None:
                raise ValueError("The ids hold `<boi>` without a well-formed `<|image|><|reserved_token_h|>"
                                 "<|reserved_token_w|><boi>` header before it.")
            if (h is not None and h != header[0]) or (w is not None and w != header[1]):
                raise ValueError(f"Requested grid {h} x {w} disagrees with the header's {header[0]} x {header[1]}.")
            h, w = header
            ids = ids[position + 1 : position + 1 + h * w]
            if len(ids) < h * w:
                raise ValueError(f"The header announces {h} x {w} = {h * w} codes but only {len(ids)} ids follow it.")
        elif h is None or w is None:
            raise ValueError(f"No `{BOI_TOKEN}` header in the ids: give `h` and `w`.")
        codes = validate_image_token_ids(
            ids, h, w, self.special_token_ids.image_token_offset, self.special_token_ids.image_codebook_size
        )
        offset = self.special_token_ids.image_token_offset
        return {"image_tokens": torch.tensor([c - offset for c in codes], dtype=torch.long), "grid_size": (h, w)}

    def image_ids_to_codes(self, image_token_ids) -> list[int]:
        """Image ids -> codebook indices (subtract `image_token_offset`)."""
        offset, size = self.special_token_ids.image_token_offset, self.special_token_ids.image_codebook_size
        if hasattr(image_token_ids, "tolist"):
            image_token_ids = image_token_ids.tolist()
        out = []
        for t in image_token_ids:
            if not offset <= int(t) < offset + size:
                raise ValueError(f"Id {t} is not an image id (allowed: {offset}..{offset + size - 1}).")
            out.append(int(t) - offset)
        return out

    def codes_to_image_ids(self, codes) -> list[int]:
        """Codebook indices -> image ids (add `image_token_offset`)."""
        offset, size = self.special_token_ids.image_token_offset, self.special_token_ids.image_codebook_size
        if hasattr(codes, "tolist"):
            codes = codes.tolist()
        out = []
        for c in codes:
            if not 0 <= int(c) < size:
                raise ValueError(f"Code {c} is outside the codebook (allowed: 0..{size - 1}).")
            out.append(int(c) + offset)
        return out

    def postprocess(self, images, output_type: str = "pil"):
        """Decoded images in [0, 1] -> PIL images or numpy (see [`LLaDAUniImageProcessor.postprocess`])."""
        return self.image_processor.postprocess(images, output_type=output_type)


__all__ = ["LLaDAUniProcessor", "LLaDAUniEncodedImage"]
