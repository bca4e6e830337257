# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""Several images in one understanding prompt: the prompt layout (image blocks in order, then the question), the
one-image list form equal to the plain form, `understand_image`, the processor's nested form and the pipeline with
the several-images resize budget."""

import json

import numpy as np
import PIL.Image
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoProcessor

import transformers_llada_uni  # noqa: F401  (registers the Auto classes)
from diffusers_llada_uni import LLaDAUniUnderstandingPipeline
from transformers_llada_uni import LLaDAUniImageVQModel
from transformers_llada_uni import prompting_llada_uni as prompting

from conftest import EXPECTED, IMAGES, TINY_RELEASED


pytestmark = pytest.mark.usefixtures("single_thread")

QUESTION = "What differs between the pictures?"
FAST = dict(steps=4, block_length=8, gen_length=16)


@pytest.fixture(scope="module")
def processor():
    return AutoProcessor.from_pretrained(TINY_RELEASED)


@pytest.fixture(scope="module")
def tokenizer(processor):
    return processor.tokenizer


@pytest.fixture(scope="module")
def model():
    return AutoModelForCausalLM.from_pretrained(TINY_RELEASED).eval()


@pytest.fixture(scope="module")
def image_tokenizer():
    return LLaDAUniImageVQModel.from_pretrained(TINY_RELEASED / "image_tokenizer").eval()


@pytest.fixture(scope="module")
def reader(model, processor, image_tokenizer):
    pipe = LLaDAUniUnderstandingPipeline(model=model, processor=processor, image_tokenizer=image_tokenizer)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def understand_case():
    return json.loads((EXPECTED / "understand.json").read_text())


@pytest.fixture(scope="module")
def image_a(understand_case):
    """The recorded understanding image: 8 x 12 image ids (with offset)."""
    return {"image_tokens": understand_case["image_token_ids"], "h": understand_case["h"], "w": understand_case["w"]}


@pytest.fixture(scope="module")
def image_b():
    """The recorded editing image: 8 x 8 image ids (with offset)."""
    case = json.loads((EXPECTED / "edit.json").read_text())
    return {"image_tokens": case["image_token_ids"], "h": case["h"], "w": case["w"]}


def _lists(*images):
    """`(image_tokens, h, w)` in the several-images form."""
    return [i["image_tokens"] for i in images], [i["h"] for i in images], [i["w"] for i in images]


def _block_from_tokens(tokenizer, image):
    """`<|image|><|reserved_token_h|><|reserved_token_w|><boi> ids <|/image|>`, from the tokenizer's own tokens."""
    ids = tokenizer.convert_tokens_to_ids
    header = [ids("<|image|>"), ids(f"<|reserved_token_{image['h']}|>"), ids(f"<|reserved_token_{image['w']}|>"),
              ids("<boi>")]
    return header + list(image["image_tokens"]) + [ids("<|/image|>")]


# ------------------------------------------------------------------------------------------------------ prompting
def test_two_images_are_their_blocks_in_order_then_the_question(tokenizer, image_a, image_b):
    question = tokenizer(QUESTION, add_special_tokens=False).input_ids
    prompt = prompting.build_understanding_prompt(tokenizer, *_lists(image_a, image_b), QUESTION)
    assert prompt == _block_from_tokens(tokenizer, image_a) + _block_from_tokens(tokenizer, image_b) + question
    swapped = prompting.build_understanding_prompt(tokenizer, *_lists(image_b, image_a), QUESTION)
    assert swapped == _block_from_tokens(tokenizer, image_b) + _block_from_tokens(tokenizer, image_a) + question
    # Tuples and tensors are accepted as sequences too.
    tokens, h, w = _lists(image_a, image_b)
    as_tensors = prompting.build_understanding_prompt(
        tokenizer, tuple(torch.tensor(t) for t in tokens), tuple(h), tuple(w), QUESTION
    )
    assert as_tensors == prompt


@pytest.mark.parametrize("system_prompt", [None, "You are a careful observer."])
def test_chat_template_puts_all_blocks_before_the_question_in_one_user_turn(tokenizer, image_a, image_b,
                                                                           system_prompt):
    one = prompting.build_understanding_prompt(tokenizer, image_a["image_tokens"], image_a["h"], image_a["w"],
                                               QUESTION, use_chat_template=True, system_prompt=system_prompt)
    two = prompting.build_understanding_prompt(tokenizer, *_lists(image_a, image_b), QUESTION,
                                               use_chat_template=True, system_prompt=system_prompt)
    block_a, block_b = _block_from_tokens(tokenizer, image_a), _block_from_tokens(tokenizer, image_b)
    start = next(i for i in range(len(one)) if one[i : i + len(block_a)] == block_a)
    # The template around the image is unchanged: the second block follows the first one.
    assert two == one[: start + len(block_a)] + block_b + one[start + len(block_a) :]
    assert two.count(tokenizer.convert_tokens_to_ids("<|/image|>")) == 2


@pytest.mark.parametrize("use_chat_template", [False, True])
def test_one_image_as_lists_is_the_plain_form(tokenizer, image_a, understand_case, use_chat_template):
    plain = prompting.build_understanding_prompt(tokenizer, image_a["image_tokens"], image_a["h"], image_a["w"],
                                                 QUESTION, use_chat_template=use_chat_template)
    listed = prompting.build_understanding_prompt(tokenizer, *_lists(image_a), QUESTION,
                                                  use_chat_template=use_chat_template)
    assert listed == plain
    if not use_chat_template:
        recorded = prompting.build_understanding_prompt(tokenizer, *_lists(image_a), understand_case["question"])
        assert recorded == understand_case["output_ids"][: len(recorded)]


@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda a, b: ([a, b, a], [8, 8], [12, 8]), ValueError, r"2 heights \(`h`\), 2 widths \(`w`\) and 3 id"),
        (lambda a, b: ([a, b], [8, 8], [12]), ValueError, r"2 heights \(`h`\), 1 widths"),
        (lambda a, b: ([], [], []), ValueError, "empty"),
        (lambda a, b: ([a, b], [8, 8], 12), TypeError, r"`h` \(\[8, 8\]\) and `w` \(12\) must both"),
        (lambda a, b: ([a, b[:-1]], [8, 8], [12, 8]), ValueError, r"`image_tokens\[1\]` holds 63 ids.*needs 64"),
        (lambda a, b: ([a, 5], [8, 8], [12, 8]), TypeError, r"`image_tokens\[1\]` must be a sequence of ids"),
        (lambda a, b: ([a, b], [8, 0], [12, 8]), ValueError, r"`h` of `image_tokens\[1\]` must be a positive int.*got 0"),
        (lambda a, b: (a, [8], [12]), ValueError, r"1 heights \(`h`\), 1 widths \(`w`\) and 96 id sequences"),
        (lambda a, b: ([a, b], 8, 12), TypeError, "flat sequence of ids for one image"),
        (lambda a, b: (a[:-1], 8, 12), ValueError, r"`image_tokens` holds 95 ids.*needs 96"),
    ],
)
def test_bad_several_images_input_is_named(model, tokenizer, image_a, image_b, make, error, message):
    # Checked once, at generation's public boundary (the prompt builders trust their callers).
    image_tokens, h, w = make(image_a["image_tokens"], image_b["image_tokens"])
    with pytest.raises(error, match=message):
        model.understand_image(image_tokens, h, w, QUESTION, tokenizer=tokenizer)


# ---------------------------------------------------------------------------------------------- understand_image
def test_understand_two_images_is_text_generation_on_the_processor_prompt(model, processor, image_a, image_b):
    tokenizer = processor.tokenizer
    result = model.understand_image(*_lists(image_a, image_b), QUESTION, tokenizer=tokenizer, return_dict=True,
                                    **FAST)
    prompt = processor.build_understanding_prompt([[image_a, image_b]], QUESTION)["input_ids"][0]
    expected = model.generate(torch.tensor([prompt]), tokenizer=tokenizer, temperature=0.0, threshold=0.95, **FAST)
    assert result.sequences.tolist() == expected.tolist()
    # The text starts at the question, after both images.
    question_start = len(prompt) - len(prompting.encode_text(tokenizer, QUESTION))
    assert result.text == tokenizer.decode(expected[0, question_start:].tolist(), skip_special_tokens=True)
    assert result.text.startswith(QUESTION)
    again = model.understand_image(*_lists(image_a, image_b), QUESTION, tokenizer=tokenizer, return_dict=True, **FAST)
    assert again.sequences.tolist() == result.sequences.tolist()
    swapped = model.understand_image(*_lists(image_b, image_a), QUESTION, tokenizer=tokenizer, return_dict=True,
                                     **FAST)
    swapped_prompt = processor.build_understanding_prompt([[image_b, image_a]], QUESTION)["input_ids"][0]
    assert swapped.sequences[0, : len(swapped_prompt)].tolist() == swapped_prompt != prompt


def test_understand_one_image_as_lists_gives_the_recorded_case(model, tokenizer, image_a, understand_case):
    result = model.understand_image(*_lists(image_a), understand_case["question"], tokenizer=tokenizer,
                                    return_dict=True, **understand_case["kwargs"])
    assert result.text == understand_case["text"]
    assert result.sequences[0].tolist() == understand_case["output_ids"]


def test_understand_takes_encode_images_output_directly(model, tokenizer, image_a, image_b):
    lists = model.understand_image(*_lists(image_a, image_b), QUESTION, tokenizer=tokenizer, return_dict=True, **FAST)
    dicts = model.understand_image([image_a, image_b], question=QUESTION, tokenizer=tokenizer, return_dict=True,
                                   **FAST)
    assert dicts.sequences.tolist() == lists.sequences.tolist() and dicts.text == lists.text
    plain = model.understand_image(image_a["image_tokens"], image_a["h"], image_a["w"], QUESTION, tokenizer=tokenizer,
                                   return_dict=True, **FAST)
    one = model.understand_image(image_a, question=QUESTION, tokenizer=tokenizer, return_dict=True, **FAST)
    assert one.sequences.tolist() == plain.sequences.tolist()
    with pytest.raises(TypeError, match="what `processor.encode_images` returns"):
        model.understand_image(image_a["image_tokens"], question=QUESTION, tokenizer=tokenizer, **FAST)
    with pytest.raises(TypeError, match=r"Image 1 lacks \['h'\]"):
        broken = {"image_tokens": image_b["image_tokens"], "w": image_b["w"]}
        model.understand_image([image_a, broken], question=QUESTION, tokenizer=tokenizer, **FAST)
    with pytest.raises(TypeError, match="`question` must be a string"):
        model.understand_image(image_a, tokenizer=tokenizer, **FAST)


def test_understand_batch_equals_single_calls(model, tokenizer, image_a, image_b, understand_case):
    # Prompts of different lengths (one image / two images, short / long question) share the forwards.
    entries = [image_a, [image_a, image_b], image_b]
    questions = [understand_case["question"], QUESTION, "Is it round?"]
    batch = model.understand_image(entries, question=questions, tokenizer=tokenizer, return_dict=True,
                                   **understand_case["kwargs"])
    assert isinstance(batch, list) and len(batch) == 3
    for entry, question, result in zip(entries, questions, batch):
        single = model.understand_image(entry, question=question, tokenizer=tokenizer, return_dict=True,
                                        **understand_case["kwargs"])
        assert result.sequences.tolist() == single.sequences.tolist() and result.text == single.text
    assert batch[0].text == understand_case["text"]
    texts = model.understand_image(entries, question=questions, tokenizer=tokenizer, **understand_case["kwargs"])
    assert texts == [result.text for result in batch]

    with pytest.raises(ValueError, match="3 questions and 2 image entries"):
        model.understand_image(entries[:2], question=questions, tokenizer=tokenizer, **FAST)
    with pytest.raises(ValueError, match="`h` and `w` come from them"):
        model.understand_image(entries, 8, 12, question=questions, tokenizer=tokenizer, **FAST)
    with pytest.raises(TypeError, match="list of `encode_images` entries, one per question"):
        model.understand_image(image_a, question=questions, tokenizer=tokenizer, **FAST)
    with pytest.raises(ValueError, match="streamer follows one answer"):
        model.understand_image(entries, question=questions, tokenizer=tokenizer, streamer=object(), **FAST)


def test_understand_validates_each_image(model, tokenizer, image_a, image_b):
    tokens, h, w = _lists(image_a, image_b)
    with pytest.raises(ValueError, match=r"`image_tokens\[1\]` holds 63 ids, but the grid h=8 x w=8 needs 64"):
        model.understand_image([tokens[0], tokens[1][:-1]], h, w, QUESTION, tokenizer=tokenizer, **FAST)
    offset = prompting.get_special_token_ids(tokenizer, model.config).image_token_offset
    codes = [t - offset for t in tokens[0]]  # codes without the offset
    with pytest.raises(ValueError, match=r"`image_tokens\[0\]` holds ids outside the image range"):
        model.understand_image([codes, tokens[1]], h, w, QUESTION, tokenizer=tokenizer, **FAST)
    with pytest.raises(ValueError, match="2 heights"):
        model.understand_image(tokens, h, w[:1] + w, QUESTION, tokenizer=tokenizer, **FAST)
    with pytest.raises(ValueError, match="empty"):
        model.understand_image([], [], [], QUESTION, tokenizer=tokenizer, **FAST)


# ----------------------------------------------------------------------------------------------------- processor
def test_processor_nested_form_is_the_prompting_function(processor, image_a, image_b):
    tokenizer = processor.tokenizer
    two = prompting.build_understanding_prompt(tokenizer, *_lists(image_a, image_b), QUESTION)
    one = prompting.build_understanding_prompt(tokenizer, *_lists(image_a), "Describe it.")
    assert processor.build_understanding_prompt([[image_a, image_b]], QUESTION)["input_ids"] == [two]
    # A batch mixing a prompt with two images and a prompt with one.
    batch = processor.build_understanding_prompt([[image_a, image_b], image_a], [QUESTION, "Describe it."])
    assert batch["input_ids"] == [two, one]
    assert processor.build_understanding_prompt([[image_a]], "Describe it.")["input_ids"] == [one]
    assert processor.build_understanding_prompt(image_a, "Describe it.")["input_ids"] == [one]
    # One set of images is shared by every question.
    shared = processor.build_understanding_prompt([[image_a, image_b]], [QUESTION, QUESTION])
    assert shared["input_ids"] == [two, two]
    chat = processor.build_understanding_prompt([[image_a, image_b]], QUESTION, use_chat_template=True)
    assert chat["input_ids"] == [
        prompting.build_understanding_prompt(tokenizer, *_lists(image_a, image_b), QUESTION, use_chat_template=True)
    ]
    padded = processor.build_understanding_prompt([[image_a, image_b], image_a], [QUESTION, "Describe it."],
                                                  return_tensors="pt")
    assert padded["input_ids"].shape == (2, len(two))
    assert padded["attention_mask"][1].sum().item() == len(one)


def test_processor_rejects_bad_image_sets(processor, image_a, image_b):
    with pytest.raises(ValueError, match="needs at least one image"):
        processor.build_understanding_prompt([[]], QUESTION)
    short = dict(image_b, image_tokens=image_b["image_tokens"][:-1])
    with pytest.raises(ValueError, match=r"image\[0\]\[1\].*holds 63 ids.*needs 64"):
        processor.build_understanding_prompt([[image_a, short]], QUESTION)
    with pytest.raises(ValueError, match="2 images but 3 questions"):
        processor.build_understanding_prompt([[image_a, image_b], image_a], ["a", "b", "c"])
    with pytest.raises(TypeError, match="what `processor.encode_images` returns"):
        processor.build_understanding_prompt([[image_a, [1, 2]]], QUESTION)
    # Editing takes one image per instruction.
    with pytest.raises(TypeError, match="must be a dict"):
        processor.build_editing_prompts([[image_a, image_b]], "Make it red.")


# ------------------------------------------------------------------------------------------------------ pipeline
def _picture(side):
    """A `side` x `side` RGB gradient: larger than the several-images budget (448^2 px) when side > 448."""
    ramp = np.indices((side, side)).sum(axis=0) % 256
    return PIL.Image.fromarray(np.stack([ramp, ramp[::-1], ramp.T], axis=-1).astype(np.uint8))


def test_pipeline_encodes_several_pictures_with_the_several_images_budget(reader, processor, image_tokenizer):
    big, small = _picture(480), IMAGES / "landscape_150x100.png"
    with torch.no_grad():
        alone = processor.encode_images(big, image_tokenizer)
        together = processor.encode_images([[big, small]], image_tokenizer)[0]
    assert (alone["h"], alone["w"]) == (30, 30)  # 480 px: inside the one-image budget (800^2 px)
    assert (together[0]["h"], together[0]["w"]) == (28, 28)  # 448^2 px at most each
    out = reader(image=[[big, small]], prompt=QUESTION, **FAST)
    assert len(out.text) == len(out.sequences) == 1
    prompt = processor.build_understanding_prompt([together], QUESTION)["input_ids"][0]
    assert out.sequences[0][: len(prompt)].tolist() == prompt
    assert out.text[0].startswith(QUESTION)


def test_pipeline_image_tokens_sets(reader, model, processor, image_a, image_b, understand_case):
    out = reader(image_tokens=[[image_a, image_b], image_a], prompt=[QUESTION, understand_case["question"]],
                 **understand_case["kwargs"])
    expected = model.understand_image(*_lists(image_a, image_b), QUESTION, tokenizer=processor.tokenizer,
                                      return_dict=True, **understand_case["kwargs"])
    assert out.text == [expected.text, understand_case["text"]]
    assert out.sequences[0].tolist() == expected.sequences[0].tolist()
    assert out.sequences[1].tolist() == understand_case["output_ids"]
    codes = {"codes": processor.image_ids_to_codes(image_b["image_tokens"]), "h": image_b["h"], "w": image_b["w"]}
    from_codes = reader(image_tokens=[[image_a, codes]], prompt=QUESTION, **understand_case["kwargs"])
    assert from_codes.text == [expected.text]


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(image_tokens=[[]], prompt="x"), ValueError, r"`image_tokens\[0\]` is an empty list"),
        (dict(image=[[_picture(64)]], image_tokens=[[{"codes": [0] * 4, "h": 2, "w": 2}]], prompt="x"), ValueError,
         "exactly one of `image`"),
        (dict(image_tokens=[[{"codes": [0] * 4, "h": 2, "w": 2}]]), ValueError, "prompt"),
        (dict(image_tokens=[[{"codes": [0] * 3, "h": 2, "w": 2}]], prompt="x"), ValueError, r"holds 3 ids, but the grid h=2 x w=2 needs 4"),
        (dict(image_tokens=[[{"codes": [0] * 4, "h": 2, "w": 2}, [1, 2]]], prompt="x"), TypeError, "dicts"),
        (dict(image_tokens=[[{"codes": [0] * 4, "h": 2, "w": 2}]] * 2, prompt=["a", "b", "c"]), ValueError,
         "2 image sets and 3 prompts"),
    ],
)
def test_pipeline_rejects_bad_image_sets(reader, kwargs, error, message):
    with pytest.raises(error, match=message):
        reader(**kwargs, **FAST)
