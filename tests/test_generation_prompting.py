"""Prompt construction (`prompting_llada_uni`): ids from the tokenizer and config, never hard-coded."""

import json

import pytest
from transformers import PreTrainedTokenizerFast

from transformers_llada_uni import LLaDA2MoeConfig, LLaDAUniConfig
from transformers_llada_uni import prompting_llada_uni as prompting

from conftest import EXPECTED, TINY_RELEASED


@pytest.fixture(scope="module")
def tokenizer():
    return PreTrainedTokenizerFast.from_pretrained(TINY_RELEASED)


def ids(tokenizer, text):
    return tokenizer(text, add_special_tokens=False).input_ids


def test_special_ids_from_tokenizer_when_the_released_config_lacks_them(tokenizer):
    config = LLaDA2MoeConfig.from_pretrained(TINY_RELEASED)
    assert config.mask_token_id is None
    special = prompting.get_special_token_ids(tokenizer, config)
    assert special.mask_token_id == tokenizer.convert_tokens_to_ids("<|mask|>")
    assert special.eos_token_id == config.eos_token_id == tokenizer.convert_tokens_to_ids("<|endoftext|>")
    assert special.image_token_id == tokenizer.convert_tokens_to_ids("<|image|>")
    assert special.end_image_token_id == tokenizer.convert_tokens_to_ids("<|/image|>")
    assert special.boi_token_id == tokenizer.convert_tokens_to_ids("<boi>")
    assert special.image_token_offset == config.image_token_offset == tokenizer.convert_tokens_to_ids("<IMAGE0>")
    assert special.image_codebook_size == config.vocab_size - config.image_token_offset


def test_config_ids_take_precedence_and_tokenizer_alone_works(tokenizer):
    config = LLaDAUniConfig(vocab_size=1088, image_token_offset=1024, image_codebook_size=64, mask_token_id=5,
                            eos_token_id=6, pad_token_id=6)
    special = prompting.get_special_token_ids(tokenizer, config)
    assert (special.mask_token_id, special.eos_token_id) == (5, 6)
    alone = prompting.get_special_token_ids(tokenizer)
    assert alone.image_token_offset == tokenizer.convert_tokens_to_ids("<IMAGE0>")
    assert alone.image_codebook_size == 64
    with pytest.raises(ValueError, match="no tokenizer was given"):
        prompting.get_special_token_ids(None, LLaDA2MoeConfig.from_pretrained(TINY_RELEASED))


def test_image_header_and_valid_sizes(tokenizer):
    header = prompting.image_header_ids(tokenizer, 8, 12)
    assert tokenizer.convert_ids_to_tokens(header) == [
        "<|image|>", "<|reserved_token_8|>", "<|reserved_token_12|>", "<boi>"
    ]
    sizes = prompting.valid_image_grid_sizes(tokenizer)
    assert sizes == list(range(8, 35, 2)) + list(range(36, 256))
    for bad in (9, 7, 256):
        with pytest.raises(ValueError, match=r"Valid grid sides .*: 8, 10, \.\.\., 34, 36\.\.255"):
            prompting.image_header_ids(tokenizer, bad, 8)
    for bad in (0, -2, True, 8.0):
        with pytest.raises(ValueError, match="must be a positive int"):
            prompting.image_header_ids(tokenizer, bad, 8, unknown_sides="text")
    with pytest.raises(ValueError, match="unknown_sides"):
        prompting.image_header_ids(tokenizer, 8, 8, unknown_sides="skip")
    assert prompting.parse_image_header(tokenizer, [1, 2] + header) == (8, 12)
    assert prompting.parse_image_header(tokenizer, header[:-1]) is None
    assert prompting.image_grid_size(1024, 1024) == (32, 32)
    assert prompting.image_grid_size(256, 320) == (8, 10)


def test_understanding_header_reads_a_missing_size_token_as_text(tokenizer, caplog):
    # A tall 90 x 200 px picture gets a 12 x 6 grid from the understanding resize; <|reserved_token_6|> does not exist.
    header = prompting.image_header_ids(tokenizer, 12, 6, unknown_sides="text")
    six = prompting.encode_text(tokenizer, "<|reserved_token_6|>")
    assert len(six) > 1  # not one special token: plain text pieces
    assert header == prompting.encode_text(tokenizer, "<|image|><|reserved_token_12|><|reserved_token_6|><boi>")
    assert header[2:-1] == six
    assert "w=6 has no `<|reserved_token_6|>`" in caplog.text
    ids = list(range(1024, 1024 + 72))
    prompt = prompting.build_understanding_prompt(tokenizer, ids, 12, 6, "What is it?")
    assert prompt[: len(header)] == header and prompt[len(header) : len(header) + 72] == ids
    with pytest.raises(ValueError, match="no `<\\|reserved_token_6\\|>` token"):
        prompting.build_text_to_image_prompt(tokenizer, "a cat", 12, 6)  # the model would have to write that header


def test_understanding_prompt_is_the_recorded_one(tokenizer):
    case = json.loads((EXPECTED / "understand.json").read_text())
    prompt = prompting.build_understanding_prompt(tokenizer, case["image_token_ids"], case["h"], case["w"],
                                                  case["question"])
    assert case["output_ids"][: len(prompt)] == prompt
    chat = prompting.build_understanding_prompt(tokenizer, case["image_token_ids"], case["h"], case["w"],
                                                case["question"], use_chat_template=True)
    image_block = prompting.image_block_ids(tokenizer, case["image_token_ids"], case["h"], case["w"])
    start = chat.index(image_block[0])
    assert chat[start : start + len(image_block)] == image_block
    assert chat[:start] == ids(tokenizer, "<role>SYSTEM</role>detailed thinking off<|role_end|><role>HUMAN</role>")
    assert chat[start + len(image_block) :] == ids(tokenizer, case["question"] + "<|role_end|><role>ASSISTANT</role>")


def test_text_to_image_prompts(tokenizer):
    header = prompting.image_header_ids(tokenizer, 8, 10)
    system = ids(tokenizer, "<role>SYSTEM</role> You are a text-to-image generation assistant. <role>HUMAN</role>")
    assistant = ids(tokenizer, "<role>ASSISTANT</role>")
    conditional = prompting.build_text_to_image_prompt(tokenizer, "A red fox", 8, 10)
    assert conditional == system + ids(tokenizer, "A red fox") + assistant + header
    unconditional = prompting.build_text_to_image_unconditional_prompt(tokenizer, 8, 10)
    assert unconditional == system + ids(tokenizer, "<uncondition>") + assistant + header
    thinking = prompting.build_thinking_prompt(tokenizer, "A red fox")
    assert thinking == ids(
        tokenizer, "<role>SYSTEM</role> You are a text-to-image generation assistant with a thinking process. "
        "<role>HUMAN</role>"
    ) + ids(tokenizer, "A red fox") + assistant
    phase2 = prompting.build_thinking_image_prompt(tokenizer, "A red fox", [5, 6], 8, 10)
    assert phase2 == thinking + [5, 6] + header
    with pytest.raises(ValueError, match="`prompt` is empty"):
        prompting.build_text_to_image_prompt(tokenizer, "", 8, 10)


def test_editing_branches(tokenizer):
    image = [1030 + i % 10 for i in range(64)]
    full, no_text, no_image = prompting.build_editing_prompts(tokenizer, image, 8, 8, "Make it red.")
    system = ids(tokenizer, "<role>SYSTEM</role> You are an image editing assistant. <role>HUMAN</role>")
    block = prompting.image_block_ids(tokenizer, image, 8, 8)
    tail = ids(tokenizer, "<role>ASSISTANT</role>") + prompting.image_header_ids(tokenizer, 8, 8)
    assert full == system + block + ids(tokenizer, "Make it red.") + tail
    assert no_text == system + block + ids(tokenizer, "<uncondition>") + tail
    assert no_image == system + [tokenizer.convert_tokens_to_ids("<|image|>")] + ids(tokenizer, "Make it red.") + tail


def test_image_token_validation():
    assert prompting.validate_image_token_ids([1024, 1087], 1, 2, 1024, 64) == [1024, 1087]
    with pytest.raises(ValueError, match="holds 3 ids, but the grid h=1 x w=2 needs 2"):
        prompting.validate_image_token_ids([1024] * 3, 1, 2, 1024, 64)
    with pytest.raises(ValueError, match=r"outside the image range \[1024, 1088\) \(e.g. 1088\)"):
        prompting.validate_image_token_ids([1024, 1088], 1, 2, 1024, 64)


def test_one_resolver_for_every_id_with_optional_fields(tokenizer):
    config = LLaDAUniConfig(vocab_size=1088, image_token_offset=1024, image_codebook_size=64, mask_token_id=5,
                            eos_token_id=[6, 7], pad_token_id=None)
    special = prompting.get_special_token_ids(tokenizer, config)
    assert (special.eos_token_id, special.eos_token_ids) == (6, (6, 7))
    assert special.pad_token_id == (tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 6)
    # text generation needs only the mask id: the image markers a config lacks stay None without a tokenizer
    text_only = prompting.get_special_token_ids(None, config, required=("mask_token_id",))
    assert (text_only.mask_token_id, text_only.image_token_id, text_only.boi_token_id) == (5, None, None)
    assert text_only.pad_token_id == 6  # no pad anywhere: EOS
    with pytest.raises(ValueError, match=r"Cannot resolve `image_token_id`.*no tokenizer was given"):
        prompting.get_special_token_ids(None, config)
    with pytest.raises(ValueError, match="unknown fields"):
        prompting.get_special_token_ids(tokenizer, config, required=("mask_id",))


def test_one_padding_helper():
    ids, mask = prompting.pad_sequences([[1, 2, 3], [4], []], 0)
    assert ids == [[1, 2, 3], [0, 0, 4], [0, 0, 0]] and mask == [[1, 1, 1], [0, 0, 1], [0, 0, 0]]
    ids, mask = prompting.pad_sequences([[1, 2, 3], [4]], 9, side="right")
    assert ids == [[1, 2, 3], [4, 9, 9]] and mask == [[1, 1, 1], [1, 0, 0]]
    with pytest.raises(ValueError, match="`side` must be"):
        prompting.pad_sequences([[1]], 0, side="middle")


def test_one_parser_of_image_inputs():
    a = {"image_tokens": [1030] * 4, "h": 2, "w": 2}
    b = {"image_tokens": [1031] * 6, "h": 2, "w": 3}
    assert prompting.parse_image_inputs(a) == [[("image_tokens", [1030] * 4, 2, 2)]]
    assert prompting.parse_image_inputs([1030] * 4, 2, 2) == prompting.parse_image_inputs(a)
    several = prompting.parse_image_inputs([a, b])
    assert several == [[("image_tokens[0]", [1030] * 4, 2, 2), ("image_tokens[1]", [1031] * 6, 2, 3)]]
    batch = prompting.parse_image_inputs([a, [a, b]], texts=["q1", "q2"])
    assert batch == [[("image_tokens", [1030] * 4, 2, 2)], several[0]]
    with pytest.raises(ValueError, match="With a list of instructions.*`h` and `w` come from them"):
        prompting.parse_image_inputs([a], 2, 2, texts=["edit"], what="instruction")
    with pytest.raises(ValueError, match="Got 2 questions and 1 image entries"):
        prompting.parse_image_inputs([a], texts=["q1", "q2"])
    with pytest.warns(FutureWarning, match="parse_image_inputs"):
        assert prompting.unpack_encoded_images(a) == ([1030] * 4, 2, 2)
    with pytest.warns(FutureWarning, match="parse_image_inputs"):
        assert prompting.understanding_images(a) == [("image_tokens", [1030] * 4, 2, 2)]
