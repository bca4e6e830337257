"""LLaDAUniProcessor: pictures -> image ids, every prompt (through prompting_llada_uni), decoding, round trips, and the
recorded understanding / editing cases end to end from the pictures."""

import json

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoProcessor

import transformers_llada_uni  # noqa: F401  (registers the Auto classes)
from transformers_llada_uni import LLaDAUniImageProcessor, LLaDAUniImageVQModel, LLaDAUniProcessor
from transformers_llada_uni import prompting_llada_uni as prompting

from conftest import EXPECTED, IMAGES, TINY_RELEASED
from subprocess_utils import run_without_package


@pytest.fixture(scope="module")
def processor():
    return AutoProcessor.from_pretrained(TINY_RELEASED)


@pytest.fixture(scope="module")
def image_tokenizer():
    return LLaDAUniImageVQModel.from_pretrained(TINY_RELEASED / "image_tokenizer").eval()


@pytest.fixture(scope="module")
def understand_case():
    return json.loads((EXPECTED / "understand.json").read_text())


@pytest.fixture(scope="module")
def edit_case():
    return json.loads((EXPECTED / "edit.json").read_text())


def _recorded_edit_image(processor, image_tokenizer, edit_case):
    """The recorded editing case used the first `h * w = 64` codes of the portrait's editing tokenisation (its full
    grid is 46 x 20) as an 8 x 8 image."""
    full = processor.encode_images(IMAGES / "portrait_90x200.png", image_tokenizer, mode="edit")
    h, w = edit_case["h"], edit_case["w"]
    return {"image_tokens": full["image_tokens"][: h * w], "h": h, "w": w}


def test_released_folder_loads_through_auto_processor(processor):
    assert isinstance(processor, LLaDAUniProcessor)
    assert isinstance(processor.image_processor, LLaDAUniImageProcessor)
    special = processor.special_token_ids
    tokenizer = processor.tokenizer
    assert special.image_token_offset == tokenizer.convert_tokens_to_ids("<IMAGE0>")
    assert special.image_codebook_size == len(tokenizer) - special.image_token_offset
    assert special.mask_token_id == tokenizer.convert_tokens_to_ids("<|mask|>")


def test_understand_image_ids_from_the_picture(processor, image_tokenizer, understand_case):
    # understand.json: landscape_150x100.png, understanding resize, grid 8 x 12, ids with the offset
    image = processor.encode_images(IMAGES / "landscape_150x100.png", image_tokenizer, mode="understand")
    assert (image["h"], image["w"]) == (understand_case["h"], understand_case["w"])
    assert image["image_tokens"] == understand_case["image_token_ids"]
    assert image["image_token_ids"] == image["image_tokens"]  # the original's name reads the same ids
    assert set(image) == {"image_tokens", "h", "w"}  # what `**image` passes to understand_image / edit_image


def test_edit_image_ids_from_the_picture(processor, image_tokenizer, edit_case):
    image = _recorded_edit_image(processor, image_tokenizer, edit_case)
    assert image["image_tokens"] == edit_case["image_token_ids"]


def test_encode_images_batches_and_nests(processor, image_tokenizer):
    paths = [IMAGES / "landscape_150x100.png", IMAGES / "portrait_90x200.png"]
    singles = [processor.encode_images(path, image_tokenizer) for path in paths]
    assert processor.encode_images(paths, image_tokenizer) == singles
    nested = processor.encode_images([paths, [paths[0]]], image_tokenizer)
    assert len(nested) == 2 and len(nested[0]) == 2 and len(nested[1]) == 1
    # two images in one prompt: the smaller per-image budget still leaves these small pictures unchanged
    assert nested[1][0] == singles[0]
    with pytest.raises(TypeError, match="LLaDAUniImageVQModel"):
        processor.encode_images(paths[0], image_tokenizer=None)


def test_understanding_prompt_matches_recording(processor, image_tokenizer, understand_case):
    image = processor.encode_images(IMAGES / "landscape_150x100.png", image_tokenizer)
    ids = processor.build_understanding_prompt(image, understand_case["question"])["input_ids"][0]
    assert ids == understand_case["output_ids"][: len(ids)]
    assert ids == prompting.build_understanding_prompt(
        processor.tokenizer, image["image_tokens"], image["h"], image["w"], understand_case["question"]
    )
    chat_ids = processor.build_understanding_prompt(image, understand_case["question"], use_chat_template=True)[
        "input_ids"
    ][0]
    block = prompting.image_block_ids(processor.tokenizer, image["image_tokens"], image["h"], image["w"])
    start = chat_ids.index(block[0])
    assert chat_ids[start : start + len(block)] == block
    rendered = processor.tokenizer.apply_chat_template(
        [{"role": "user", "content": "@@" + understand_case["question"]}], tokenize=False, add_generation_prompt=True
    )
    before, after = rendered.split("@@")
    tokenizer = processor.tokenizer
    assert chat_ids == prompting.encode_text(tokenizer, before) + block + prompting.encode_text(tokenizer, after)


def test_text_to_image_prompts(processor):
    out = processor.build_text_to_image_prompt("A red fox in the snow", image_h=256, image_w=320)
    assert out["image_grid_thw"] == [[1, 8, 10]]
    tokenizer = processor.tokenizer
    assert out["input_ids"][0] == prompting.build_text_to_image_prompt(tokenizer, "A red fox in the snow", 8, 10)
    assert out["unconditional_input_ids"][0] == prompting.build_text_to_image_unconditional_prompt(tokenizer, 8, 10)
    assert out["input_ids"][0][-4:] == prompting.image_header_ids(tokenizer, 8, 10)
    assert prompting.parse_image_header(tokenizer, out["input_ids"][0]) == (8, 10)
    thinking = processor.build_text_to_image_prompt("A fox", image_h=256, image_w=256, thinking=True)
    assert thinking["input_ids"][0] == prompting.build_text_to_image_prompt(tokenizer, "A fox", 8, 8, thinking=True)
    with pytest.raises(ValueError, match="reserved_token"):
        processor.build_text_to_image_prompt("A fox", image_h=256 + 32, image_w=256)


def test_batched_prompts_are_left_padded(processor):
    texts = ["A fox", "A much longer prompt about a red fox in the snow at night"]
    out = processor.build_text_to_image_prompt(texts, image_h=256, image_w=256, return_tensors="pt")
    ids, mask = out["input_ids"], out["attention_mask"]
    assert isinstance(ids, torch.Tensor) and ids.shape == mask.shape and ids.shape[0] == 2
    short = prompting.build_text_to_image_prompt(processor.tokenizer, texts[0], 8, 8)
    assert ids[0, -len(short):].tolist() == short
    assert mask[0].tolist() == [0] * (ids.shape[1] - len(short)) + [1] * len(short)
    assert (ids[0, : ids.shape[1] - len(short)] == processor.tokenizer.pad_token_id).all()
    assert mask[1].all()
    assert out["unconditional_input_ids"].shape[0] == 2


def test_editing_prompts(processor, image_tokenizer, edit_case):
    image = _recorded_edit_image(processor, image_tokenizer, edit_case)
    out = processor.build_editing_prompts(image, edit_case["instruction"])
    full, no_text, no_image = prompting.build_editing_prompts(
        processor.tokenizer, image["image_tokens"], 8, 8, edit_case["instruction"]
    )
    assert out["input_ids"][0] == full
    assert out["no_text_input_ids"][0] == no_text
    assert out["no_image_input_ids"][0] == no_image
    assert out["image_grid_thw"] == [[1, 8, 8]]
    offset = processor.special_token_ids.image_token_offset
    assert not any(t >= offset for t in no_image)
    assert sum(t >= offset for t in full) == 64


def test_thinking_prompts(processor):
    phase1 = processor.build_thinking_prompt("A fox")["input_ids"][0]
    assert phase1 == prompting.build_thinking_prompt(processor.tokenizer, "A fox")
    thinking_ids = prompting.encode_text(processor.tokenizer, "I will draw a fox.")
    phase2 = processor.build_thinking_image_prompt("A fox", thinking_ids, image_h=256, image_w=256)
    assert phase2["input_ids"][0] == phase1 + thinking_ids + prompting.image_header_ids(processor.tokenizer, 8, 8)
    assert phase2["unconditional_input_ids"][0] == prompting.build_text_to_image_unconditional_prompt(
        processor.tokenizer, 8, 8, thinking=True
    )


def test_decoding(processor, edit_case, understand_case):
    offset = processor.special_token_ids.image_token_offset
    codes = edit_case["result"]["token_ids"]
    ids = [c + offset for c in codes]
    header = prompting.image_header_ids(processor.tokenizer, 8, 8)
    decoded = processor.decode_image_tokens([5, 6] + header + ids + [processor.special_token_ids.eos_token_id])
    assert decoded["grid_size"] == (8, 8)
    assert decoded["image_tokens"].tolist() == codes
    bare = processor.decode_image_tokens(torch.tensor(ids), h=8, w=8)
    assert bare["image_tokens"].tolist() == codes
    assert processor.image_ids_to_codes(ids) == codes
    assert processor.codes_to_image_ids(codes) == ids
    text = processor.decode_text(understand_case["output_ids"])
    assert text.endswith(understand_case["text"])  # image ids are dropped, the question and answer remain
    with pytest.raises(ValueError, match="give `h` and `w`"):
        processor.decode_image_tokens(ids)
    with pytest.raises(ValueError, match="disagrees"):
        processor.decode_image_tokens(header + ids, h=4, w=16)
    with pytest.raises(ValueError, match="only 10 ids follow"):
        processor.decode_image_tokens(header + ids[:10])
    with pytest.raises(ValueError, match="holds 63 ids"):
        processor.decode_image_tokens(ids[:63], h=8, w=8)
    with pytest.raises(ValueError, match="outside the image range"):
        processor.decode_image_tokens([1] * 64, h=8, w=8)
    with pytest.raises(ValueError, match="outside the codebook"):
        processor.codes_to_image_ids([offset])
    with pytest.raises(ValueError, match="not an image id"):
        processor.image_ids_to_codes([0])


def test_call_without_text_gives_the_image_processor_output(processor):
    out = processor(images=IMAGES / "square_64x64_rgba.png", return_tensors="pt")
    assert set(out) == {"pixel_values", "image_grid_thw"}
    assert out["pixel_values"].shape == (64, 768) and out["image_grid_thw"].tolist() == [[1, 8, 8]]
    edit = processor(images=IMAGES / "square_64x64_rgba.png", mode="edit")
    assert edit["image_grid_thw"].tolist() == [[1, 32, 32]]


def test_prompt_builders_refuse_bad_images(processor):
    with pytest.raises(ValueError, match="Give `images`, `text` or both"):
        processor()
    with pytest.raises(TypeError, match="what `processor.encode_images` returns"):
        processor.build_understanding_prompt([1, 2, 3], "Question?")
    with pytest.raises(ValueError, match="needs 64"):
        processor.build_understanding_prompt({"image_tokens": [1024] * 10, "h": 8, "w": 8}, "Question?")
    with pytest.raises(ValueError, match="outside the image range"):
        processor.build_understanding_prompt({"image_tokens": [5] * 64, "h": 8, "w": 8}, "Question?")
    with pytest.raises(ValueError, match=r"`image\[0\]\[1\]\['image_tokens'\]` holds ids outside the image range"):
        good = {"image_tokens": [1024] * 64, "h": 8, "w": 8}
        processor.build_understanding_prompt([[good, {"image_tokens": [5] * 64, "h": 8, "w": 8}]], "Question?")
    with pytest.raises(ValueError, match="empty"):
        processor.build_understanding_prompt({"image_tokens": [1024] * 64, "h": 8, "w": 8}, "  ")
    with pytest.raises(ValueError, match="2 images but 3 questions"):
        image = {"image_tokens": [1024] * 64, "h": 8, "w": 8}
        processor.build_understanding_prompt([image, image], ["a", "b", "c"])
    with pytest.raises(TypeError, match="one source image"):
        processor.build_editing_prompts([[image, image]], "Make it blue.")
    with pytest.raises(ValueError, match="tokenizer"):
        LLaDAUniProcessor(image_processor=LLaDAUniImageProcessor(), tokenizer=None)


# ------------------------------------------------------------------------------------------- model inputs
def test_keyword_arguments_reach_the_tokenizer_and_the_image_processor(processor):
    # transformers' typed processor kwargs: tokenizer options go to the tokenizer, picture options to the image
    # processor, flat or per modality.
    truncated = processor(text=["hello there friend"], truncation=True, max_length=2)
    assert [len(ids) for ids in truncated["input_ids"]] == [2]
    padded = processor(text=["hello there friend"], padding="max_length", max_length=20, return_tensors="pt")
    assert padded["input_ids"].shape == (1, 20) and padded["attention_mask"].sum() < 20
    nested = processor(text=["hello there friend"], text_kwargs={"padding": "max_length", "max_length": 20})
    assert nested["input_ids"] == padded["input_ids"].tolist()
    picture = IMAGES / "landscape_150x100.png"
    with_picture = processor(images=picture, text="Describe this image.", max_length=8, padding="max_length")
    assert len(with_picture["input_ids"][0]) > 8  # a length limit without truncation pads, never cuts the image block
    with_picture = processor(images=picture, text="Describe this image.", max_length=200, padding="max_length")
    assert len(with_picture["input_ids"][0]) == 200
    edit = processor(images=picture, text="Make it blue.", images_kwargs={"mode": "edit"})
    assert edit["image_grid_thw"].tolist() == [[1, 26, 38]]
    with pytest.raises(ValueError, match="passed two times"):
        processor(text="hello", text_kwargs={"padding": "do_not_pad"}, padding="max_length")
    with pytest.raises(ValueError, match="does not use \\['size'\\]"):
        processor(images=picture, size={"height": 64, "width": 64})


def test_model_input_names_are_what_the_processor_returns(processor):
    out = processor(images=IMAGES / "landscape_150x100.png", text="Describe this image.", return_tensors="pt")
    assert set(out) == set(processor.model_input_names)
    assert "image_sizes" not in processor.model_input_names


def test_call_puts_the_pictures_before_the_text_as_the_original(processor, image_tokenizer, understand_case):
    # Text without the image placeholder: the pictures go first, as in the original's understanding prompt.
    picture = IMAGES / "landscape_150x100.png"
    out = processor(images=picture, text=understand_case["question"], return_tensors="pt")
    image = processor.encode_images(picture, image_tokenizer)
    expected = processor.build_understanding_prompt(image, understand_case["question"])["input_ids"][0]
    ids = out["input_ids"][0]
    placeholders = out["mm_token_type_ids"][0].bool()
    assert (ids[placeholders] == processor.image_token_id).all()
    filled = ids.clone()
    filled[placeholders] = torch.tensor(image["image_tokens"])
    assert filled.tolist() == expected
    assert out["image_grid_thw"].tolist() == [[1, image["h"], image["w"]]]
    # The placeholder can also be written where the picture goes.
    placed = processor(images=picture, text=processor.image_token + understand_case["question"], return_tensors="pt")
    assert placed["input_ids"].tolist() == out["input_ids"].tolist()
    with pytest.raises(ValueError, match="should be the same as the number of images"):
        processor(images=[picture, picture], text=processor.image_token + "Compare.")


def test_batch_mixes_text_only_and_several_pictures(processor, image_tokenizer):
    paths = [IMAGES / "landscape_150x100.png", IMAGES / "portrait_90x200.png"]
    token = processor.image_token
    out = processor(images=[[], paths], text=["No picture here.", f"{token}{token}Compare them."], padding=True)
    assert sum(out["mm_token_type_ids"][0]) == 0
    # two pictures in one prompt: each gets the several-images budget, as `encode_images([[a, b]])` gives them
    pair = processor.encode_images([paths], image_tokenizer)[0]
    assert sum(out["mm_token_type_ids"][1]) == sum(len(image["image_tokens"]) for image in pair)
    assert out["image_grid_thw"].tolist() == [[1, image["h"], image["w"]] for image in pair]


def test_chat_template_takes_content_parts_and_keeps_the_released_string_form(processor):
    released = (TINY_RELEASED / "chat_template.jinja").read_text()
    conversations = [
        [{"role": "user", "content": "Hello"}],
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is in the box?"},
            {"role": "assistant", "content": "<think>\nLet me look.\n</think>\n\nA cat."},
            {"role": "user", "content": "And now?"},
        ],
        [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": "", "tool_calls": [
                {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
            {"role": "tool", "content": "sunny"},
            {"role": "assistant", "content": "It is sunny."},
        ],
    ]
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    for conversation in conversations:
        for add_generation_prompt in (False, True):
            kwargs = {"tokenize": False, "add_generation_prompt": add_generation_prompt, "tools": tools}
            assert processor.apply_chat_template(conversation, **kwargs) == processor.tokenizer.apply_chat_template(
                conversation, chat_template=released, **kwargs
            )
    as_parts = [
        {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
        {"role": "user", "content": [{"type": "text", "text": "What is in the box?"}]},
    ]
    as_strings = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is in the box?"}]
    assert processor.apply_chat_template(as_parts, add_generation_prompt=True) == processor.apply_chat_template(
        as_strings, add_generation_prompt=True
    )
    with pytest.raises(Exception, match="reads text and image parts, not 'video'"):
        processor.apply_chat_template([{"role": "user", "content": [{"type": "video", "url": "v.mp4"}]}])


@pytest.mark.parametrize("system_prompt", [None, "Answer in one word."])
def test_chat_template_prompt_is_the_understanding_prompt(processor, image_tokenizer, understand_case, system_prompt):
    picture = IMAGES / "landscape_150x100.png"
    question = understand_case["question"]
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
    if system_prompt is not None:
        messages.insert(0, {"role": "system", "content": [{"type": "text", "text": system_prompt}]})
    inputs = processor.apply_chat_template(
        messages, images=picture, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
    )
    image = processor.encode_images(picture, image_tokenizer)
    expected = processor.build_understanding_prompt(
        image, question, use_chat_template=True, system_prompt=system_prompt
    )["input_ids"][0]
    filled = inputs["input_ids"][0].clone()
    filled[inputs["mm_token_type_ids"][0].bool()] = torch.tensor(image["image_tokens"])
    assert filled.tolist() == expected
    assert set(inputs) == set(processor.model_input_names)
    # the picture inside the message is the same as the picture given apart
    messages[-1]["content"][0] = {"type": "image", "path": str(picture)}
    inline = processor.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
    )
    assert inline["input_ids"].tolist() == inputs["input_ids"].tolist()
    assert torch.equal(inline["pixel_values"], inputs["pixel_values"])


def test_chat_template_assistant_tokens_mask(processor):
    messages = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is this?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "A landscape."}]},
    ]
    out = processor.apply_chat_template(
        messages, images=IMAGES / "landscape_150x100.png", tokenize=True, return_dict=True,
        return_assistant_tokens_mask=True, return_tensors="pt",
    )
    answer = out["input_ids"][0][out["assistant_masks"][0].bool()]
    assert processor.decode(answer) == "A landscape.<|role_end|>"


def test_postprocess_delegates(processor):
    pictures = processor.postprocess(torch.full((1, 3, 16, 16), 0.5))
    assert pictures[0].size == (16, 16)
    assert np.asarray(pictures[0]).max() == 128


def test_save_load_round_trip(processor, tmp_path):
    custom = LLaDAUniProcessor(
        image_processor=LLaDAUniImageProcessor(rgba_background=[255, 255, 255]),
        tokenizer=processor.tokenizer,
        image_token_offset=processor.special_token_ids.image_token_offset,
    )
    custom.save_pretrained(tmp_path)
    for loaded in (LLaDAUniProcessor.from_pretrained(tmp_path), AutoProcessor.from_pretrained(tmp_path)):
        assert isinstance(loaded, LLaDAUniProcessor)
        assert loaded.image_processor.to_dict() == custom.image_processor.to_dict()
        assert loaded.image_token_offset == custom.image_token_offset
        assert loaded.special_token_ids == custom.special_token_ids
        prompt = loaded.build_text_to_image_prompt("A fox", image_h=256, image_w=256)
        assert prompt["input_ids"] == custom.build_text_to_image_prompt("A fox", image_h=256, image_w=256)["input_ids"]


@pytest.fixture(scope="module")
def model():
    return AutoModelForCausalLM.from_pretrained(TINY_RELEASED).eval()


def test_understand_end_to_end_from_the_picture(processor, image_tokenizer, model, understand_case):
    image = processor.encode_images(IMAGES / "landscape_150x100.png", image_tokenizer, mode="understand")
    out = model.understand_image(
        **image, question=understand_case["question"], tokenizer=processor.tokenizer, return_dict=True,
        **understand_case["kwargs"],
    )
    assert out.text == understand_case["text"]
    assert out.sequences[0].tolist() == understand_case["output_ids"]


def test_edit_end_to_end_from_the_picture(processor, image_tokenizer, model, edit_case):
    image = _recorded_edit_image(processor, image_tokenizer, edit_case)
    result = model.edit_image(
        **image, instruction=edit_case["instruction"], tokenizer=processor.tokenizer, **edit_case["kwargs"]
    )
    assert result.token_ids.tolist() == edit_case["result"]["token_ids"]
    assert (result.h, result.w) == (edit_case["result"]["h"], edit_case["result"]["w"])
    decoded = processor.decode_image_tokens(result.sequences[0])
    assert decoded["image_tokens"].tolist() == edit_case["result"]["token_ids"]


def test_remote_code_processor_without_the_package(processor, tmp_path):
    processor.save_pretrained(tmp_path)
    expected = processor.build_text_to_image_prompt("A fox", image_h=256, image_w=256)["input_ids"][0]
    pixels = processor(images=IMAGES / "portrait_90x200.png")["pixel_values"]
    result = run_without_package(
        f"""
        import json
        from transformers import AutoProcessor
        processor = AutoProcessor.from_pretrained({str(tmp_path)!r}, trust_remote_code=True)
        assert type(processor).__module__.startswith("transformers_modules"), type(processor).__module__
        ids = processor.build_text_to_image_prompt("A fox", image_h=256, image_w=256)["input_ids"][0]
        pixels = processor(images={str(IMAGES / "portrait_90x200.png")!r})["pixel_values"]
        print(json.dumps({{"ids": ids, "pixels": float(pixels.sum()), "shape": list(pixels.shape)}}))
        """
    )
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["ids"] == expected
    assert out["shape"] == list(pixels.shape)
    assert out["pixels"] == pytest.approx(float(pixels.sum()), rel=1e-6)
