"""transformers users' habits with `generate` (issue 19 items 1, 2, 12), written as they write them."""

import pytest
import torch
from transformers import GenerationConfig
from transformers.testing_utils import CaptureLogger
from transformers.utils import logging as hf_logging

from transformers_llada_uni import prompting_llada_uni

from generation_testing import model, quiet, tokenizer  # noqa: F401  (fixtures)


pytestmark = pytest.mark.usefixtures("single_thread", "quiet")

SMALL = dict(block_length=8, steps=4)
PROMPT = "<role>HUMAN</role>Tell me about the red fox.<role>ASSISTANT</role>"


@pytest.fixture
def inputs(tokenizer):
    return tokenizer(PROMPT, return_tensors="pt", add_special_tokens=False)


def new_tokens_generated(model, call):
    """How many positions the call generated (the callback sees the whole generated region every step)."""
    lengths = []
    call(callback=lambda step, block, ids: lengths.append(ids.shape[1]))
    return lengths[-1]


# ------------------------------------------------------------------------------------------------ lengths
def test_max_length_and_max_new_tokens_from_keywords(model, tokenizer, inputs):
    prompt_length = inputs.input_ids.shape[1]
    assert new_tokens_generated(model, lambda **k: model.generate(**inputs, tokenizer=tokenizer, max_length=prompt_length + 12,
                                                            **SMALL, **k)) == 12
    out = model.generate(**inputs, tokenizer=tokenizer, max_length=prompt_length + 12, **SMALL)
    assert out.shape[1] <= prompt_length + 12
    assert new_tokens_generated(model, lambda **k: model.generate(**inputs, tokenizer=tokenizer, max_new_tokens=9,
                                                            **SMALL, **k)) == 9
    with pytest.raises(ValueError, match=r"`max_length` \(5\) counts the prompt"):
        model.generate(**inputs, tokenizer=tokenizer, max_length=5)


def test_max_new_tokens_from_the_models_and_a_passed_config(model, tokenizer, inputs):
    model.generation_config.max_new_tokens = 16
    try:
        assert new_tokens_generated(model, lambda **k: model.generate(**inputs, tokenizer=tokenizer, **SMALL, **k)) == 16
        # a keyword wins over the model's config
        assert new_tokens_generated(
            model, lambda **k: model.generate(**inputs, tokenizer=tokenizer, max_new_tokens=8, **SMALL, **k)) == 8
    finally:
        model.generation_config.max_new_tokens = None
    config = GenerationConfig(max_new_tokens=16)
    assert new_tokens_generated(
        model, lambda **k: model.generate(**inputs, generation_config=config, tokenizer=tokenizer, **SMALL, **k)) == 16
    # both set: max_new_tokens takes precedence, as in transformers, and it says so
    logger = hf_logging.get_logger("transformers_llada_uni.generation_llada_uni")
    with CaptureLogger(logger) as captured:
        both = GenerationConfig(max_new_tokens=10, max_length=100)
        assert new_tokens_generated(
            model, lambda **k: model.generate(**inputs, generation_config=both, tokenizer=tokenizer, **SMALL, **k)) == 10
    assert "`max_new_tokens` takes precedence" in captured.out
    # understanding honours them too
    image = [1024 + i for i in range(64)]
    assert new_tokens_generated(model, lambda **k: model.understand_image(
        image, 8, 8, "What is it?", tokenizer=tokenizer, max_new_tokens=8, **SMALL, **k)) == 8


# ------------------------------------------------------------------------------------------------ options
def test_num_return_sequences_with_sampling(model, tokenizer):
    batch = tokenizer(["Hello", "Write a haiku about the sea"], return_tensors="pt", padding=True,
                      add_special_tokens=False)
    out = model.generate(**batch, tokenizer=tokenizer, do_sample=True, num_return_sequences=3, max_new_tokens=8,
                         generator=torch.Generator().manual_seed(0), **SMALL)
    assert out.shape[0] == 6
    prompt_length = batch.input_ids.shape[1]
    for row in range(6):
        # copies of a prompt are next to each other (the output left-pads prompts)
        real = batch.input_ids[row // 3][batch.attention_mask[row // 3].bool()].tolist()
        assert out[row, prompt_length - len(real) : prompt_length].tolist() == real
    assert len({tuple(out[row].tolist()) for row in range(3)}) > 1  # sampled: the copies differ
    with pytest.raises(ValueError, match="`num_return_sequences=2` needs sampling"):
        model.generate(**batch, tokenizer=tokenizer, num_return_sequences=2, max_new_tokens=8)
    with pytest.raises(ValueError, match="`num_return_sequences=2` applies to `generate`"):
        model.generate_image("A fox", tokenizer=tokenizer, num_return_sequences=2, do_sample=True)


def test_stop_strings(model, tokenizer, inputs):
    prompt_length = inputs.input_ids.shape[1]
    plain = model.generate(**inputs, tokenizer=tokenizer, max_new_tokens=24, eos_early_stop=False, **SMALL)
    new = plain[0, prompt_length:].tolist()
    text = tokenizer.decode(new)
    stop = tokenizer.decode(new[5:7])
    assert stop and stop in text
    first_end = next(k for k in range(1, len(new) + 1) if stop in tokenizer.decode(new[:k]))
    out = model.generate(**inputs, tokenizer=tokenizer, max_new_tokens=24, eos_early_stop=False,
                         stop_strings=[stop], **SMALL)
    # the same tokens, cut after the one that completes the first occurrence
    assert out[0, prompt_length:].tolist() == new[:first_end]
    with pytest.raises(ValueError, match="`stop_strings` need the tokenizer"):
        model.generate(**inputs, mask_token_id=tokenizer.mask_token_id, stop_strings="x", max_new_tokens=8)


def test_min_new_tokens_holds_back_eos(model, tokenizer, inputs):
    prompt_length = inputs.input_ids.shape[1]
    first = model.generate(**inputs, tokenizer=tokenizer, max_new_tokens=16, **SMALL)[0, prompt_length]
    # make the first generated token the EOS: without min_new_tokens the answer ends right there
    eos = int(first)
    short = model.generate(**inputs, tokenizer=tokenizer, max_new_tokens=16, eos_token_id=eos, **SMALL)
    assert short.shape[1] == prompt_length + 1
    longer = model.generate(**inputs, tokenizer=tokenizer, max_new_tokens=16, eos_token_id=eos, min_new_tokens=6,
                            **SMALL)
    assert longer.shape[1] > prompt_length + 6
    assert eos not in longer[0, prompt_length : prompt_length + 6].tolist()
    with_min_length = model.generate(**inputs, tokenizer=tokenizer, max_new_tokens=16, eos_token_id=eos,
                                     min_length=prompt_length + 6, **SMALL)
    assert with_min_length.tolist() == longer.tolist()


def test_return_dict_in_generate_with_scores(model, tokenizer, inputs):
    prompt_length = inputs.input_ids.shape[1]
    out = model.generate(**inputs, tokenizer=tokenizer, max_new_tokens=16, return_dict_in_generate=True,
                         output_scores=True, **SMALL)
    new = out.sequences.shape[1] - prompt_length
    assert out.scores.shape == out.commit_steps.shape == (1, new)
    assert ((out.scores > 0) & (out.scores <= 1)).all()
    assert ((out.commit_steps >= 0) & (out.commit_steps < out.num_forward_passes)).all()
    # every forward commits something, in order
    assert sorted(set(out.commit_steps[0].tolist())) == list(range(out.num_forward_passes))
    plain = model.generate(**inputs, tokenizer=tokenizer, max_new_tokens=16, return_dict_in_generate=True, **SMALL)
    assert plain.scores is None and torch.equal(plain.sequences, out.sequences)


@pytest.mark.parametrize(
    "option, message",
    [
        (dict(num_beams=2), r"`num_beams=2` \(beam search"),
        (dict(repetition_penalty=1.2), r"`repetition_penalty=1.2` \(a logits processor that assumes left-to-right"),
        (dict(no_repeat_ngram_size=3), "no_repeat_ngram_size=3"),
        (dict(output_attentions=True), "output_attentions=True"),
        (dict(output_logits=True), "output_logits=True"),
        (dict(typical_p=0.9), "typical_p=0.9"),
    ],
)
def test_unsupported_options_are_refused(model, tokenizer, inputs, option, message):
    with pytest.raises(ValueError, match=message):
        model.generate(**inputs, tokenizer=tokenizer, max_new_tokens=8, **option)
    with pytest.raises(ValueError, match=message):
        model.generate(**inputs, tokenizer=tokenizer, generation_config=GenerationConfig(max_new_tokens=8, **option))
    with pytest.raises(ValueError, match=message):
        model.generate_image("A fox", tokenizer=tokenizer, **option)
    # neutral values pass
    model.generate(**inputs, tokenizer=tokenizer, max_new_tokens=8, num_beams=1, repetition_penalty=1.0, **SMALL)
    with pytest.raises(TypeError, match=r"Unexpected generation argument\(s\) \['logits_processor'\]"):
        model.generate(**inputs, tokenizer=tokenizer, logits_processor=[], max_new_tokens=8)


def test_do_sample_false_is_greedy(model, tokenizer, inputs):
    greedy = model.generate(**inputs, tokenizer=tokenizer, max_new_tokens=8, **SMALL)
    forced = model.generate(**inputs, tokenizer=tokenizer, max_new_tokens=8, do_sample=False, temperature=0.9,
                            generator=torch.Generator().manual_seed(3), **SMALL)
    assert torch.equal(greedy, forced)


# ------------------------------------------------------------------------------------------------ image size
def test_image_size_not_a_multiple_of_the_grid_unit_warns(model, tokenizer):
    logger = hf_logging.get_logger(prompting_llada_uni.__name__)
    with CaptureLogger(logger) as captured:
        result = model.generate_image("A fox", tokenizer=tokenizer, image_h=336, image_w=256, **SMALL)
    assert "`image_h=336` is not a multiple of 32 px" in captured.out and "320 px (10 codes)" in captured.out
    assert (result.h, result.w) == (10, 8)
    with CaptureLogger(logger) as captured:
        model.generate_image("A fox", tokenizer=tokenizer, image_h=256, image_w=256, **SMALL)
    assert "multiple of 32" not in captured.out
