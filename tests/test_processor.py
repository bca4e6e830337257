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


def test_call_and_bad_inputs(processor):
    out = processor(images=IMAGES / "square_64x64_rgba.png", text="Describe this image.", return_tensors="pt")
    assert out["pixel_values"].shape == (64, 768) and out["image_grid_thw"].tolist() == [[1, 8, 8]]
    assert out["input_ids"][0].tolist() == prompting.encode_text(processor.tokenizer, "Describe this image.")
    edit = processor(images=IMAGES / "square_64x64_rgba.png", mode="edit")
    assert edit["image_grid_thw"].tolist() == [[1, 32, 32]]
    with pytest.raises(ValueError, match="Give `images`, `text` or both"):
        processor()
    with pytest.raises(TypeError, match="`image_tokens`, `h` and `w`"):
        processor.build_understanding_prompt([1, 2, 3], "Question?")
    with pytest.raises(ValueError, match="needs 64"):
        processor.build_understanding_prompt({"image_tokens": [1024] * 10, "h": 8, "w": 8}, "Question?")
    with pytest.raises(ValueError, match="empty"):
        processor.build_understanding_prompt({"image_tokens": [1024] * 64, "h": 8, "w": 8}, "  ")
    with pytest.raises(ValueError, match="2 images but 3 questions"):
        image = {"image_tokens": [1024] * 64, "h": 8, "w": 8}
        processor.build_understanding_prompt([image, image], ["a", "b", "c"])
    with pytest.raises(ValueError, match="tokenizer"):
        LLaDAUniProcessor(image_processor=LLaDAUniImageProcessor(), tokenizer=None)


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
