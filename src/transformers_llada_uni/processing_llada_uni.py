# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""Processor of LLaDA2.0-Uni: tokenizer + image processor, every prompt the model uses, and decoding of its output.

Prompt layouts are not defined here: every builder calls the pure functions of `prompting_llada_uni`, which the
generation methods use too, so a prompt built here is byte-identical to the one the model builds itself.

Two ways a picture reaches the model:

- As model inputs, the way every multimodal processor of transformers works: `processor(images=..., text=...)` and
  `processor.apply_chat_template(messages, images=..., tokenize=True, return_dict=True)` put each picture's image
  block in `input_ids` (header, one placeholder id per image code, `<|/image|>`) and return `pixel_values`,
  `image_grid_thw` and `mm_token_type_ids` (1 on the placeholders). The language model runs its image tokenizer on
  the pixels and writes the image ids over the placeholders, so `model.generate(**inputs)` and `model(**inputs)`
  take the output as it is. Turning pixels into ids needs the 1.2 B-parameter image tokenizer model, which belongs
  with the model (its device, its dtype), not with the processor; Janus and GLM-Image split the work the same way.
- As image ids, for the mode methods (`understand_image`, `edit_image`) and the `build_*` prompt builders:
  [`LLaDAUniProcessor.encode_images`] runs an image tokenizer given to it.

Example (model inputs):

```python
>>> processor = AutoProcessor.from_pretrained(checkpoint)
>>> model = AutoModelForCausalLM.from_pretrained(checkpoint)  # finds its image tokenizer in `image_tokenizer/`
>>> messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe this image."}]}]
>>> inputs = processor.apply_chat_template(
...     messages, images=picture, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
... )
>>> answer = processor.batch_decode(model.generate(**inputs)[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
```

Example (image ids for the mode methods):

```python
>>> image = processor.encode_images(picture, image_tokenizer, mode="understand")
>>> answer = model.understand_image(**image, question="Describe this image.", tokenizer=processor.tokenizer)

>>> image = processor.encode_images(picture, image_tokenizer, mode="edit")
>>> edited = model.edit_image(**image, instruction="Make it a watercolor painting.", tokenizer=processor.tokenizer)
```
"""

import os
from collections.abc import Sequence
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np
from transformers.feature_extraction_utils import BatchFeature
from transformers.image_utils import ImageInput
from transformers.processing_utils import MultiModalData, ProcessingKwargs, ProcessorMixin, Unpack
from transformers.tokenization_utils_base import TextInput

from .image_processing_llada_uni import LLaDAUniImageProcessor, LLaDAUniImageProcessorKwargs, _as_prompts
from .prompting_llada_uni import (
    BOI_TOKEN,
    _require_token_id,
    build_editing_prompts,
    build_text_to_image_prompt,
    build_text_to_image_unconditional_prompt,
    build_thinking_image_prompt,
    build_thinking_prompt,
    build_understanding_prompt,
    get_special_token_ids,
    image_block_ids,
    image_grid_size,
    pad_sequences,
    parse_image_header,
    parse_image_inputs,
    validate_image_token_ids,
)
from .released_layout_llada_uni import released_image_processor_dir

if TYPE_CHECKING:
    import PIL.Image
    import torch
    from transformers import PreTrainedTokenizerBase

    from .modeling_llada_uni_image_tokenizer import LLaDAUniImageVQModel


# The released chat template (the tokenizer's `chat_template.jinja`), extended to content given as a list of parts. A
# string content renders byte for byte as the released template renders it; an image part renders as the processor's
# image placeholder (`LLaDAUniProcessor.image_token`), which the processor expands into the picture's image block.
CHAT_TEMPLATE = """{#- LLaDA2.0-Uni's released chat template, extended to content given as a list of parts: a text part is its text, an
    image part the processor's image placeholder (the processor expands each into the picture's image block), and
    the assistant's turns are marked for `return_assistant_tokens_mask`. String content renders exactly as released. -#}
{%- macro render_content(content) -%}
    {%- if content is string -%}
        {{- content -}}
    {%- elif content is iterable and content is not mapping -%}
        {%- for part in content -%}
            {%- if part.type == 'text' -%}
                {{- part.text -}}
            {%- elif part.type in ['image', 'image_url'] -%}
                {{- '<padding>' -}}
            {%- else -%}
                {{- raise_exception("LLaDA2.0-Uni reads text and image parts, not '" ~ part.type ~ "'.") -}}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
{%- endmacro -%}
{% set thinking_option = 'off' %}
{{- '<role>SYSTEM</role>' }}
{%- if messages[0].role == 'system' %}
    {{- render_content(messages[0].content) + '\\n' }}
{%- endif %}
{%- if tools %}
    {{- "# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\nYou are provided with function signatures within <tools></tools> XML tags:\\n<tools>" }}
    {%- for tool in tools %}
        {{- "\\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\"name\\": <function-name>, \\"arguments\\": <args-json-object>}\\n</tool_call>\\n" }}
{%- endif %}
{{- 'detailed thinking ' + thinking_option + '<|role_end|>' }}
{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}
{%- for message in messages[::-1] %}
    {%- set index = (messages|length - 1) - loop.index0 %}
    {%- set text = render_content(message.content) %}
    {%- if ns.multi_step_tool and message.role == "user" and message.content is defined and message.content is not none and message.content is not mapping and not(text.startswith('<tool_response>') and text.endswith('</tool_response>')) %}
        {%- set ns.multi_step_tool = false %}
        {%- set ns.last_query_index = index %}
    {%- endif %}
{%- endfor %}
{%- for message in messages %}
    {%- set content = render_content(message.content) %}
    {%- if message.role == "user" %}
        {{- '<role>HUMAN</role>' + content + '<|role_end|>' }}
    {%- elif message.role == "system" and not loop.first %}
        {{- '<role>SYSTEM</role>' + content + '<|role_end|>' }}
    {%- elif message.role == "assistant" %}
        {%- set reasoning_content = '' %}
        {%- if message.reasoning_content is string %}
            {%- set reasoning_content = message.reasoning_content %}
        {%- else %}
            {%- if '</think>' in content %}
                {%- set reasoning_content = content.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') %}
                {%- set content = content.split('</think>')[-1].lstrip('\\n') %}
            {%- endif %}
        {%- endif %}
        {{- '<role>ASSISTANT</role>' }}
        {%- generation %}
        {%- if loop.index0 > ns.last_query_index %}
            {%- if reasoning_content %}
                {{- '\\n<think>\\n' + reasoning_content.strip('\\n') + '\\n</think>\\n\\n' + content.lstrip('\\n') }}
            {%- else %}
                {{- content }}
            {%- endif %}
        {%- else %}
            {{- content }}
        {%- endif %}
        {%- if message.tool_calls %}
            {%- for tool_call in message.tool_calls %}
                {%- if (loop.first and content) or (not loop.first) %}
                    {{- '\\n' }}
                {%- endif %}
                {%- if tool_call.function %}
                    {%- set tool_call = tool_call.function %}
                {%- endif %}
                {{- '<tool_call>\\n{"name": "' }}
                {{- tool_call.name }}
                {{- '", "arguments": ' }}
                {%- if tool_call.arguments is string %}
                    {{- tool_call.arguments }}
                {%- else %}
                    {{- tool_call.arguments | tojson }}
                {%- endif %}
                {{- '}\\n</tool_call>' }}
            {%- endfor %}
        {%- endif %}
        {{- '<|role_end|>' }}
        {%- endgeneration %}
    {%- elif message.role == "tool" %}
        {%- if loop.first or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<role>OBSERVATION</role>' }}
        {%- endif %}
        {{- '\\n<tool_response>\\n' }}
        {{- content }}
        {{- '\\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|role_end|>' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<role>ASSISTANT</role>' }}
{%- endif %}
"""


class LLaDAUniProcessorKwargs(ProcessingKwargs, total=False):
    """Keyword arguments of [`LLaDAUniProcessor.__call__`]: the tokenizer's (`text_kwargs`: `padding`, `truncation`,
    `max_length`, ...) and the image processor's (`images_kwargs`: `mode`, ...), given flat or per modality."""

    images_kwargs: LLaDAUniImageProcessorKwargs


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
            Chat template. Defaults to [`CHAT_TEMPLATE`]: the released template, which also takes content as a list
            of `{"type": "text", "text": ...}` and `{"type": "image"}` parts.
        image_token_offset (`int`, *optional*):
            Id of image code 0. Read from the tokenizer's `<IMAGE0>` token when not given.
        image_codebook_size (`int`, *optional*):
            Number of image codes. `len(tokenizer) - image_token_offset` when not given.

    Calling the processor gives model inputs (see [`__call__`]); the prompt builders return a [`BatchFeature`] with
    `input_ids` (and the other guidance branches' ids) as a batch of one prompt, or of several when lists are given;
    with `return_tensors`, prompts of different lengths are left-padded with the tokenizer's pad id and an
    `attention_mask` (0 on padding) is added.
    """

    valid_processor_kwargs = LLaDAUniProcessorKwargs
    # Exactly what the language model's `forward` / `generate` take (it runs its image tokenizer on the pixels).
    model_input_names = ["input_ids", "attention_mask", "mm_token_type_ids", "pixel_values", "image_grid_thw"]
    # Where the text holds a picture: the placeholder that a chat template's image part renders as, and that fills
    # the picture's image block, one per image code, until the model writes the image ids there. A special token of the
    # released vocabulary that prompts do not otherwise use.
    image_token = "<padding>"
    # The model finds the placeholders by these (1 = image code), not by the placeholder id.
    return_mm_token_type_ids = True

    def __init__(
        self,
        image_processor: LLaDAUniImageProcessor | None = None,
        tokenizer: "PreTrainedTokenizerBase | None" = None,
        chat_template: str | None = None,
        image_token_offset: int | None = None,
        image_codebook_size: int | None = None,
        **kwargs: Any,
    ):
        if image_processor is None:
            image_processor = LLaDAUniImageProcessor()
        if tokenizer is None:
            raise ValueError("LLaDAUniProcessor needs a `tokenizer` (the LLaDA2.0-Uni tokenizer).")
        super().__init__(image_processor, tokenizer, chat_template=chat_template or CHAT_TEMPLATE)
        for name, value in (("image_token_offset", image_token_offset), ("image_codebook_size", image_codebook_size)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
                raise ValueError(f"`{name}` must be a positive integer or None, got {value!r}.")
        self.image_token_offset = image_token_offset
        self.image_codebook_size = image_codebook_size
        # Fail now, not at the first prompt, if the tokenizer lacks what LLaDA2.0-Uni prompts need.
        self.special_token_ids = get_special_token_ids(
            tokenizer, SimpleNamespace(image_token_offset=image_token_offset, image_codebook_size=image_codebook_size)
        )
        self.image_token_id = _require_token_id(tokenizer, self.image_token)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any) -> "LLaDAUniProcessor":
        r"""
        As [`~ProcessorMixin.from_pretrained`]. A released LLaDA2.0-Uni folder (tokenizer at the top, the GLM-Image
        style `preprocessor_config.json` in `image_tokenizer/`) is read as well.
        """
        path = os.fspath(pretrained_model_name_or_path)
        image_processor_dir = released_image_processor_dir(os.path.join(path, kwargs.get("subfolder") or ""))
        if image_processor_dir is not None:
            from transformers import AutoTokenizer

            image_processor = LLaDAUniImageProcessor.from_pretrained(image_processor_dir)
            tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
            return cls(image_processor=image_processor, tokenizer=tokenizer)
        return super().from_pretrained(pretrained_model_name_or_path, **kwargs)

    def save_pretrained(self, save_directory: str | os.PathLike, push_to_hub: bool = False, **kwargs: Any) -> list[str]:
        r"""As [`~ProcessorMixin.save_pretrained`] (with the code files and `auto_map` for remote code)."""
        # Writing `auto_map` sets it on the processor object as well (the parent removes it from the tokenizer the same
        # way), while a loaded processor does not keep it: saving must not make the two differ.
        had_auto_map = "auto_map" in self.__dict__
        files = super().save_pretrained(save_directory, push_to_hub=push_to_hub, **kwargs)
        if not had_auto_map:
            self.__dict__.pop("auto_map", None)
        return files

    # ---------------------------------------------------------------------------------------------- model inputs --
    def __call__(
        self,
        images: ImageInput | None = None,
        text: TextInput | list[TextInput] | None = None,
        **kwargs: Unpack[LLaDAUniProcessorKwargs],
    ) -> BatchFeature:
        r"""
        Model inputs from pictures and text, as every multimodal processor of transformers gives them.

        Each `image_token` in `text` is where a picture goes: it becomes the picture's image block (header for its
        code grid, one `image_token` per code, `<|/image|>`). Text without any `image_token` gets each prompt's
        pictures before it, in order: the original's understanding prompt `header + image + <|/image|> + question`.
        Returns `input_ids`, `attention_mask` and `mm_token_type_ids` (1 where an image code goes) for text, and
        `pixel_values`, `image_grid_thw` for pictures; `model.generate(**inputs)` / `model(**inputs)` take them.

        Args:
            images (*optional*):
                A picture (PIL image, numpy array, path), a list of them or, for a batch, one list per prompt. With
                `image_token`s in the text, a flat list is read in their order across the batch.
            text (`str` or `list[str]`, *optional*):
                The prompt(s), tokenised as the tokenizer does (the chat template: [`apply_chat_template`]).
            kwargs ([`LLaDAUniProcessorKwargs`]):
                The tokenizer's (`padding`, `truncation`, `max_length`, `return_tensors`, ...) and the image
                processor's (`mode`: `"understand"`, `"edit"` or `"edit_resize_crop"`, ...) options, given flat or as
                `text_kwargs` / `images_kwargs`.
        """
        return super().__call__(images=images, text=text, **kwargs)

    def prepare_inputs_layout(
        self, images: ImageInput | None = None, text: TextInput | list[TextInput] | None = None, **kwargs: Any
    ) -> tuple[Any, Any, Any, Any]:
        """Group the pictures by prompt (the image processor gives a prompt with several pictures the smaller
        per-picture budget), and put them before the text where it holds no `image_token` at all."""
        images, text, videos, audio = super().prepare_inputs_layout(images=images, text=text, **kwargs)
        if images is None:
            return images, text, videos, audio
        groups = _as_prompts(images, allow_empty=True)
        if text is None:
            return groups, text, videos, audio
        markers = [sample.count(self.image_token) for sample in text]
        flat = [image for group in groups for image in group]
        if not any(markers):
            nested = isinstance(images, (list, tuple)) and any(isinstance(item, (list, tuple)) for item in images)
            if not nested and len(text) == 1:
                groups = [flat]
            if len(groups) == len(text):
                text = [self.image_token * len(group) + sample for group, sample in zip(groups, text)]
        elif sum(markers) == len(flat):
            starts = np.cumsum([0] + markers).tolist()
            groups = [flat[start:end] for start, end in zip(starts, starts[1:])]
        # Anything else is left for `validate_inputs` to refuse.
        return groups, text, videos, audio

    def validate_inputs(
        self, images: ImageInput | None = None, text: TextInput | list[TextInput] | None = None, **kwargs: Any
    ) -> None:
        """One picture per `image_token` (paths count as pictures)."""
        if images is None and text is None:
            raise ValueError("Give `images`, `text` or both.")
        if text is None:
            return
        if not all(isinstance(sample, str) for sample in text):
            raise TypeError("`text` must be a string or a list of strings.")
        markers = sum(sample.count(self.image_token) for sample in text)
        pictures = 0 if images is None else sum(len(group) for group in images)
        if markers != pictures:
            raise ValueError(
                f"The total number of {self.image_token} tokens in the prompts should be the same as the number of "
                f"images passed. Found total {markers} {self.image_token} tokens and {pictures} images."
            )

    def _process_images(self, images, **kwargs):
        processed = self.image_processor([group for group in images if group], **kwargs)
        count = len(processed["image_grid_thw"])
        return processed, [self.replace_image_token(processed, image_idx=index) for index in range(count)]

    def replace_image_token(self, image_inputs: dict, image_idx: int, **kwargs: Any) -> str:
        """The image block of picture `image_idx`, as text: its header (grid from `image_grid_thw`), one
        `image_token` per image code, `<|/image|>`."""
        _, rows, columns = (int(value) for value in image_inputs["image_grid_thw"][image_idx])
        placeholders = [self.image_token_id] * (rows * columns)
        # The layout is prompting's; its ids read back as text tokenise to the same ids.
        ids = image_block_ids(self.tokenizer, placeholders, rows, columns, unknown_sides="text")
        return self.tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    def _get_num_multimodal_tokens(self, image_sizes=None, **kwargs) -> MultiModalData:
        """Image codes (= placeholders, = patches) of pictures of the given `(height, width)` sizes, each alone in its
        prompt (what vLLM asks a processor)."""
        images_kwargs = self._merge_kwargs(**kwargs)["images_kwargs"]
        vision_data = {}
        if image_sizes is not None:
            patches = [self.image_processor.get_number_of_image_patches(*size, images_kwargs) for size in image_sizes]
            vision_data.update({"num_image_tokens": patches, "num_image_patches": patches})
        return MultiModalData(**vision_data)

    def apply_chat_template(
        self,
        conversation: list[dict[str, Any]] | list[list[dict[str, Any]]],
        chat_template: str | None = None,
        images: ImageInput | None = None,
        **kwargs: Any,
    ) -> str | list[str] | list[int] | list[list[int]] | BatchFeature:
        r"""
        As [`~ProcessorMixin.apply_chat_template`]; content may be a string (the released form) or a list of
        `{"type": "text", "text": ...}` and `{"type": "image"}` parts.

        Args:
            images (*optional*):
                The pictures of the conversation's image parts, in order (for a batch of conversations, one list per
                conversation), for image parts given without the picture itself.
        """
        if images is not None:
            processor_kwargs = dict(kwargs.pop("processor_kwargs", None) or {})
            if "images" in processor_kwargs:
                raise ValueError("Give the pictures once: as `images=` or in `processor_kwargs`, not both.")
            batched = isinstance(conversation, (list, tuple)) and bool(conversation) and (
                isinstance(conversation[0], (list, tuple)) or hasattr(conversation[0], "messages")
            )
            processor_kwargs["images"] = images if batched or isinstance(images, (list, tuple)) else [images]
            kwargs["processor_kwargs"] = processor_kwargs
        return super().apply_chat_template(conversation, chat_template, **kwargs)

    # ---------------------------------------------------------------------------------------------------- images --
    def encode_images(
        self, images: ImageInput, image_tokenizer: "LLaDAUniImageVQModel", mode: str = "understand", **image_kwargs: Any
    ) -> dict[str, Any] | list[dict[str, Any]] | list[list[dict[str, Any]]]:
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
    def _checked_images(self, entry, where: str = "image") -> tuple[list[list[int]], list[int], list[int]]:
        """One prompt's `encode_images` entry (a dict, or a list of dicts) -> its images' ids, rows and columns, each
        image checked once here (ids in the image range, `h * w` of them). `where` names the entry in errors."""
        special = self.special_token_ids
        images = []
        for name, ids, h, w in parse_image_inputs(entry)[0]:
            # prompting names the ids `image_tokens` or `image_tokens[i]`; say where in the call they were given
            name = where + (name[len("image_tokens"):] if isinstance(entry, (list, tuple)) else "") + "['image_tokens']"
            ids = validate_image_token_ids(ids, h, w, special.image_token_offset, special.image_codebook_size, name=name)
            images.append((ids, h, w))
        return tuple(list(values) for values in zip(*images))

    def _checked_edit_image(self, entry, where: str = "image") -> tuple[list[int], int, int]:
        if not isinstance(entry, dict):
            raise TypeError(
                f"`{where}` must be a dict (what `encode_images(..., mode='edit')` returns): editing takes one source "
                f"image per instruction, got {type(entry).__name__}."
            )
        (ids,), (h,), (w,) = self._checked_images(entry, where)
        return ids, h, w

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

    def _pair(self, images, texts, text_name, parse):
        """`parse` of each image entry, one per text; one entry (a dict) is shared by all texts."""
        if isinstance(images, dict):
            parsed = [parse(images, "image")]
        else:
            parsed = [parse(entry, f"image[{index}]") for index, entry in enumerate(self._as_list(images, "image")[0])]
        texts, _ = self._as_list(texts, text_name)
        if len(parsed) == 1 and len(texts) > 1:
            parsed = parsed * len(texts)
        if len(parsed) != len(texts):
            raise ValueError(f"Got {len(parsed)} images but {len(texts)} {text_name}s; give one image per prompt.")
        return parsed, texts

    def build_understanding_prompt(
        self,
        image: dict[str, Any] | Sequence[dict[str, Any] | Sequence[dict[str, Any]]],
        question: str | Sequence[str],
        use_chat_template: bool = False,
        system_prompt: str | None = None,
        return_tensors: str | None = None,
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
        checked, questions = self._pair(image, question, "question", self._checked_images)
        prompts = [
            build_understanding_prompt(self.tokenizer, ids, h, w, q, use_chat_template, system_prompt)
            for (ids, h, w), q in zip(checked, questions)
        ]
        return BatchFeature(data=self._batch(prompts, "input_ids", return_tensors), tensor_type=return_tensors)

    def build_text_to_image_prompt(
        self,
        prompt: str | Sequence[str],
        image_h: int = 1024,
        image_w: int = 1024,
        thinking: bool = False,
        return_tensors: str | None = None,
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

    def build_editing_prompts(
        self,
        image: dict[str, Any] | Sequence[dict[str, Any]],
        instruction: str | Sequence[str],
        return_tensors: str | None = None,
    ) -> BatchFeature:
        r"""
        The three editing branches: `input_ids` (system turn + image block + instruction + assistant turn + header),
        `no_text_input_ids` (instruction replaced by `<uncondition>`) and `no_image_input_ids` (a bare `<|image|>`
        instead of the image block), plus `image_grid_thw` (output grid = input grid).
        """
        checked, instructions = self._pair(image, instruction, "instruction", self._checked_edit_image)
        branches = {"input_ids": [], "no_text_input_ids": [], "no_image_input_ids": []}
        grids = []
        for (ids, h, w), text in zip(checked, instructions):
            for key, built in zip(branches, build_editing_prompts(self.tokenizer, ids, h, w, text)):
                branches[key].append(built)
            grids.append([1, h, w])
        data = {}
        for key, sequences in branches.items():
            data.update(self._batch(sequences, key, return_tensors))
        data["image_grid_thw"] = grids
        return BatchFeature(data=data, tensor_type=return_tensors)

    def build_thinking_prompt(self, prompt: str | Sequence[str], return_tensors: str | None = None) -> BatchFeature:
        r"""Phase 1 of thinking mode: thinking system turn + prompt + assistant turn (the model then writes its
        reasoning and the image header)."""
        prompts, _ = self._as_list(prompt, "prompt")
        sequences = [build_thinking_prompt(self.tokenizer, p) for p in prompts]
        return BatchFeature(data=self._batch(sequences, "input_ids", return_tensors), tensor_type=return_tensors)

    def build_thinking_image_prompt(
        self,
        prompt: str,
        thinking_ids: Sequence[int],
        image_h: int = 1024,
        image_w: int = 1024,
        return_tensors: str | None = None,
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
    def decode_text(self, ids: "Sequence[int] | torch.Tensor", skip_special_tokens: bool = True, **kwargs: Any) -> str:
        r"""Generated ids -> text. Image ids (codes) are dropped: they are not text."""
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        ids = list(ids)
        if ids and isinstance(ids[0], (list, tuple)):
            raise ValueError("`decode_text` takes one sequence; use `batch_decode` for a batch.")
        offset = self.special_token_ids.image_token_offset
        text_ids = [int(t) for t in ids if int(t) < offset]
        return self.tokenizer.decode(text_ids, skip_special_tokens=skip_special_tokens, **kwargs)

    def decode_image_tokens(
        self, ids: "Sequence[int] | torch.Tensor", h: int | None = None, w: int | None = None
    ) -> dict:
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

    def image_ids_to_codes(self, image_token_ids: "Sequence[int] | torch.Tensor") -> list[int]:
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

    def codes_to_image_ids(self, codes: "Sequence[int] | torch.Tensor") -> list[int]:
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

    def postprocess(
        self, images: "torch.Tensor | np.ndarray", output_type: str = "pil"
    ) -> "list[PIL.Image.Image] | np.ndarray":
        """Decoded images in [0, 1] -> PIL images or numpy (see [`LLaDAUniImageProcessor.postprocess`])."""
        return self.image_processor.postprocess(images, output_type=output_type)


__all__ = ["LLaDAUniProcessor", "LLaDAUniEncodedImage"]
