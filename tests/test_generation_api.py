"""Generation API: input validation, progress, callbacks, streaming, thinking mode and the LM-head-on-block rule."""

import json

import pytest
import torch
from transformers.generation.streamers import BaseStreamer
from transformers.testing_utils import CaptureLogger
from transformers.utils import logging as hf_logging

import transformers_llada_uni  # noqa: F401
from transformers_llada_uni import generation_llada_uni
from transformers_llada_uni.generation_llada_uni import _Guidance, _split_text_span
from transformers_llada_uni.prompting_llada_uni import (
    build_text_to_image_unconditional_prompt,
    build_thinking_prompt,
    get_special_token_ids,
    image_header_ids,
)

from conftest import EXPECTED
from generation_testing import force, model, progress_bars_off, tokenizer  # noqa: F401  (fixtures)


SMALL_IMAGE = dict(image_h=256, image_w=256, steps=4, block_length=8)  # an 8 x 8 grid


pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture
def no_progress():
    with progress_bars_off():
        yield


@pytest.fixture(scope="module")
def edit_case():
    return json.loads((EXPECTED / "edit.json").read_text())


# ------------------------------------------------------------------------------------------------ errors
def test_grid_without_reserved_token_lists_valid_sizes(model, tokenizer):
    with pytest.raises(ValueError, match=r"reserved_token_9\|>.*8, 10, \.\.\., 34, 36\.\.255"):
        model.generate_image("A fox", tokenizer=tokenizer, image_h=288, image_w=256)  # (288 // 2) // 16 = 9


def test_edit_grid_without_reserved_token(model, tokenizer):
    with pytest.raises(ValueError, match="Valid grid sides"):
        model.edit_image([1030] * 99, 9, 11, "Make it red.", tokenizer=tokenizer)


@pytest.mark.parametrize("method", ["edit", "understand"])
def test_image_token_count_must_match_grid(model, tokenizer, edit_case, method):
    tokens = edit_case["image_token_ids"][:-1]
    with pytest.raises(ValueError, match=r"holds 63 ids, but the grid h=8 x w=8 needs 64"):
        if method == "edit":
            model.edit_image(tokens, 8, 8, "Make it red.", tokenizer=tokenizer)
        else:
            model.understand_image(tokens, 8, 8, "What is it?", tokenizer=tokenizer)


def test_image_ids_outside_image_range(model, tokenizer, edit_case):
    tokens = [t - 1024 for t in edit_case["image_token_ids"]]  # codes without the offset
    with pytest.raises(ValueError, match=r"outside the image range \[1024, 1088\).*image_token_offset"):
        model.edit_image(tokens, 8, 8, "Make it red.", tokenizer=tokenizer)


def test_gen_length_smaller_than_grid(model, tokenizer):
    with pytest.raises(ValueError, match=r"`gen_length` \(63\) must be at least the grid size h \* w = 8 \* 8 = 64"):
        model.generate_image("A fox", tokenizer=tokenizer, gen_length=63, **SMALL_IMAGE)


@pytest.mark.parametrize("name", ["steps", "block_length"])
@pytest.mark.parametrize("value", [0, -3])
def test_non_positive_steps_or_block_length(model, tokenizer, name, value):
    settings = {**SMALL_IMAGE, name: value}
    with pytest.raises(ValueError, match=rf"`{name}` must be a positive integer, got {value}"):
        model.generate_image("A fox", tokenizer=tokenizer, **settings)
    with pytest.raises(ValueError, match=rf"`{name}` must be a positive integer, got {value}"):
        model.generate(torch.tensor([[991, 39]]), tokenizer=tokenizer, gen_length=8, **{name: value})


def test_missing_tokenizer(model, edit_case):
    with pytest.raises(ValueError, match="needs a tokenizer.*set_tokenizer"):
        model.generate_image("A fox", **SMALL_IMAGE)
    with pytest.raises(ValueError, match="needs a tokenizer"):
        model.edit_image(edit_case["image_token_ids"], 8, 8, "Make it red.")
    with pytest.raises(ValueError, match="needs a tokenizer"):
        model.understand_image(edit_case["image_token_ids"], 8, 8, "What is it?")


def test_released_config_needs_a_mask_id_source(model, tokenizer):
    # The released config has no mask id: without a tokenizer the error says where to get it.
    assert model.config.mask_token_id is None
    with pytest.raises(ValueError, match=r"Cannot resolve `mask_token_id`.*no tokenizer was given"):
        model.generate(torch.tensor([[991, 39]]), gen_length=8, block_length=8, steps=2)
    case = json.loads((EXPECTED / "generate_text.json").read_text())
    output = model.generate(torch.tensor([case["prompt_ids"]]), mask_token_id=tokenizer.mask_token_id, **case["kwargs"])
    assert output[0].tolist() == case["output_ids"]


def test_empty_prompts(model, tokenizer, edit_case):
    with pytest.raises(ValueError, match="`prompt` is empty"):
        model.generate_image("  ", tokenizer=tokenizer, **SMALL_IMAGE)
    with pytest.raises(ValueError, match="empty list"):
        model.generate_image([], tokenizer=tokenizer, **SMALL_IMAGE)
    with pytest.raises(ValueError, match="`instruction` is empty"):
        model.edit_image(edit_case["image_token_ids"], 8, 8, "", tokenizer=tokenizer)
    with pytest.raises(ValueError, match="`question` is empty"):
        model.understand_image(edit_case["image_token_ids"], 8, 8, "", tokenizer=tokenizer)
    with pytest.raises(ValueError, match="Prompt 0 is empty"):
        model.generate(torch.zeros((1, 0), dtype=torch.long), tokenizer=tokenizer, gen_length=8)
    with pytest.raises(ValueError, match="Prompt 1 is empty"):
        model.generate(torch.tensor([[991, 39], [991, 39]]), attention_mask=torch.tensor([[1, 1], [0, 0]]),
                       tokenizer=tokenizer, gen_length=8)


def test_bad_types_and_names(model, tokenizer):
    with pytest.raises(TypeError, match="`prompt` must be a string or a list of strings"):
        model.generate_image(123, tokenizer=tokenizer, **SMALL_IMAGE)
    with pytest.raises(TypeError, match=r"Unexpected generation argument\(s\) \['stepz'\]"):
        model.generate_image("A fox", tokenizer=tokenizer, stepz=3, **SMALL_IMAGE)
    with pytest.raises(ValueError, match="`mode` must be 'normal' or 'thinking'"):
        model.generate_image("A fox", tokenizer=tokenizer, mode="fast", **SMALL_IMAGE)
    with pytest.raises(ValueError, match="`remasking_strategy` must be one of"):
        model.generate_image("A fox", tokenizer=tokenizer, remasking_strategy="best", **SMALL_IMAGE)
    with pytest.raises(ValueError, match=r"`keep_ratio` must be in \(0, 1\]"):
        model.generate_image("A fox", tokenizer=tokenizer, use_sprint=True, keep_ratio=0.0, **SMALL_IMAGE)


# ------------------------------------------------------------------------------------------------ engine rules
def test_lm_head_only_sees_the_active_block(model, tokenizer, no_progress):
    widths = []
    handle = model.lm_head.register_forward_hook(lambda module, args, out: widths.append(args[0].shape[1]))
    try:
        model.generate(torch.tensor([[991, 39, 378, 992, 542]]), tokenizer=tokenizer, gen_length=16, block_length=8,
                       steps=4)
        model.generate_image("A fox", tokenizer=tokenizer, **SMALL_IMAGE)
        model.generate_image("A fox", tokenizer=tokenizer, use_sprint=True, keep_ratio=1.0, **SMALL_IMAGE)
        assert widths and set(widths) == {8}
        # Pruning ranks prefix tokens by their own top probability: each column before the last block passes the LM
        # head once more (in chunks), never a block twice.
        widths.clear()
        result = model.generate_image("A fox", tokenizer=tokenizer, use_sprint=True, keep_ratio=0.5, **SMALL_IMAGE)
    finally:
        handle.remove()
    last_block_start = max(prune["prefix_len"] for prune in result.sprint_prunes)
    assert sum(widths) - 8 * result.num_forward_passes == last_block_start


def test_cache_changes_work_not_results(model, tokenizer, no_progress):
    counts = {}
    for use_cache in (True, False):
        seen = []
        handle = model.model.register_forward_hook(lambda module, args, kwargs, out: seen.append(
            kwargs["input_ids"].shape[1]), with_kwargs=True)
        try:
            result = model.generate_image("A fox", tokenizer=tokenizer, use_cache=use_cache, **SMALL_IMAGE)
        finally:
            handle.remove()
        counts[use_cache] = (result.token_ids.tolist(), result.num_forward_passes, sum(seen))
    assert counts[True][:2] == counts[False][:2]
    assert counts[True][2] < counts[False][2]


@pytest.mark.parametrize("strategy", ["low_confidence", "top_k_margin", "neg_entropy", "random"])
def test_sprint_remasking_strategies_and_pruning(model, tokenizer, strategy, no_progress):
    result = model.generate_image(
        "A fox", tokenizer=tokenizer, use_sprint=True, keep_ratio=0.4, cache_warmup_steps=2, confidence_alpha=0.3,
        image_keep_ratio=1.0, remasking_strategy=strategy, generator=torch.Generator().manual_seed(0),
        **SMALL_IMAGE,
    )
    assert result.token_ids.shape == (64,)
    assert ((result.token_ids >= 0) & (result.token_ids < 64)).all()


def test_sampling_is_reproducible_with_a_generator(model, tokenizer, no_progress):
    def run(seed):
        return model.generate_image("A fox", tokenizer=tokenizer, temperature=0.8, top_k=20, top_p=0.9,
                                    generator=torch.Generator().manual_seed(seed), **SMALL_IMAGE).token_ids.tolist()

    assert run(0) == run(0)


def test_guidance_off_at_scale_one_uses_one_branch(model, tokenizer, no_progress):
    batch_sizes = []
    handle = model.model.register_forward_hook(
        lambda module, args, kwargs, out: batch_sizes.append(kwargs["input_ids"].shape[0]), with_kwargs=True
    )
    try:
        model.generate_image("A fox", tokenizer=tokenizer, cfg_scale=1.0, **SMALL_IMAGE)
        assert set(batch_sizes) == {1}
        batch_sizes.clear()
        model.generate_image("A fox", tokenizer=tokenizer, cfg_scale=2.0, **SMALL_IMAGE)
        assert set(batch_sizes) == {2}
    finally:
        handle.remove()


def test_negative_prompt_is_the_unconditional_branch_text(model, tokenizer, no_progress):
    from transformers_llada_uni.prompting_llada_uni import build_text_to_image_unconditional_prompt

    seen = []
    handle = model.model.register_forward_hook(
        lambda module, args, kwargs, out: seen.append(kwargs["input_ids"].clone()), with_kwargs=True
    )
    try:
        default = model.generate_image("A fox", tokenizer=tokenizer, **SMALL_IMAGE)
        first_default = seen[0]
        seen.clear()
        explicit = model.generate_image("A fox", tokenizer=tokenizer, negative_prompt="<uncondition>", **SMALL_IMAGE)
        assert torch.equal(seen[0], first_default) and torch.equal(explicit.token_ids, default.token_ids)
        seen.clear()
        model.generate_image(["A fox", "A boat"], tokenizer=tokenizer, negative_prompt=["blurry", "dark"],
                             **SMALL_IMAGE)
    finally:
        handle.remove()
    h, w = default.h, default.w
    rows = [row.tolist() for row in seen[0]]  # branches of a sample are adjacent rows: [fox, blurry, boat, dark]
    for row, text in ((rows[1], "blurry"), (rows[3], "dark")):
        expected = build_text_to_image_unconditional_prompt(tokenizer, h, w, text=text)
        assert any(row[i : i + len(expected)] == expected for i in range(len(row) - len(expected) + 1)), text
    blurry_branch = build_text_to_image_unconditional_prompt(tokenizer, h, w, text="blurry")
    assert not any(rows[0][i : i + len(blurry_branch)] == blurry_branch for i in range(len(rows[0]) - len(blurry_branch) + 1))
    with pytest.raises(ValueError, match="2 prompts and 3 negative prompts"):
        model.generate_image(["A fox", "A boat"], tokenizer=tokenizer, negative_prompt=["a", "b", "c"], **SMALL_IMAGE)
    with pytest.raises(ValueError, match="`negative_prompt` must be non-empty text"):
        model.generate_image("A fox", tokenizer=tokenizer, negative_prompt=" ", **SMALL_IMAGE)


# ------------------------------------------------------------------------------------------------ progress
def test_callback_sees_every_step(model, tokenizer, no_progress):
    calls = []
    output = model.generate(
        torch.tensor([[991, 39, 378, 992, 542]]), tokenizer=tokenizer, gen_length=16, block_length=8, steps=4,
        threshold=1.1, callback=lambda step, block, ids: calls.append((step, block, ids.clone())),
    )
    assert calls[0][:2] == (0, 0)
    masks = [int((ids == tokenizer.mask_token_id).sum()) for _, _, ids in calls]
    assert masks == sorted(masks, reverse=True) and masks[-1] == 0
    assert all(ids.shape == (1, 16) for _, _, ids in calls)
    assert calls[-1][2][0].tolist()[: output.shape[1] - 5] == output[0, 5:].tolist()


def test_streamer_receives_prompt_then_blocks_in_order(model, tokenizer, no_progress):
    class Collect(BaseStreamer):
        def __init__(self):
            self.values, self.ended = [], False

        def put(self, value):
            self.values.append(value.tolist())

        def end(self):
            self.ended = True

    prompt = [991, 39, 378, 992, 542]
    streamer = Collect()
    output = model.generate(torch.tensor([prompt]), tokenizer=tokenizer, gen_length=20, block_length=8, steps=4,
                            streamer=streamer)
    assert streamer.ended and streamer.values[0] == prompt
    assert sum(streamer.values, []) == output[0].tolist()
    with pytest.raises(ValueError, match="batch of one"):
        model.generate(torch.tensor([prompt, prompt]), tokenizer=tokenizer, gen_length=8, streamer=Collect())


def test_progress_bar_over_blocks_and_its_switches(model, tokenizer, capsys):
    prompt = torch.tensor([[991, 39, 378, 992, 542]])
    hf_logging.enable_progress_bar()
    model.generate(prompt, tokenizer=tokenizer, gen_length=16, block_length=8, steps=4)
    assert "Blocks" in capsys.readouterr().err
    model.generate(prompt, tokenizer=tokenizer, gen_length=16, block_length=8, steps=4, show_progress_bar=False)
    assert "Blocks" not in capsys.readouterr().err
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        model.generate(prompt, tokenizer=tokenizer, gen_length=16, block_length=8, steps=4)
    finally:
        hf_logging.set_verbosity(verbosity)
    assert "Blocks" not in capsys.readouterr().err


def test_return_dict_in_generate_counts_forwards(model, tokenizer, no_progress):
    output = model.generate(torch.tensor([[991, 39, 378, 992, 542]]), tokenizer=tokenizer, gen_length=16,
                            block_length=8, steps=4, threshold=1.1, return_dict_in_generate=True)
    # with nothing above the threshold, 2 tokens are committed per step: the 3 masked positions of block 0 take 2
    # steps, blocks 1 and 2 (8 masked each) take 4
    assert output.num_forward_passes == 2 + 4 + 4
    assert output.sequences.shape[0] == 1


# ------------------------------------------------------------------------------------------------ thinking
def test_thinking_mode_returns_thinking_text_and_codes(model, tokenizer, no_progress):
    logger = hf_logging.get_logger(generation_llada_uni.__name__)
    with CaptureLogger(logger) as captured:
        result = model.generate_image("A fox", tokenizer=tokenizer, mode="thinking", thinking_gen_length=16,
                                      **SMALL_IMAGE)
    assert isinstance(result.thinking, str)
    assert result.token_ids.shape == (64,) and (result.h, result.w) == (8, 8)
    # the random tiny model does not write `<boi>`: it is told, and the requested header is used
    assert "did not end its thinking" in captured.out
    assert result.sequences[0, -64 - 4 : -64].tolist() == image_header_ids(tokenizer, 8, 8)


def test_one_rule_ends_a_text_span(tokenizer):
    special = get_special_token_ids(tokenizer)
    reasoning = tokenizer("a fox", add_special_tokens=False).input_ids

    def split(ids, image_size=(8, 8), final_image=True, stopped=False):
        return _split_text_span(tokenizer, special, ids, stopped, image_size, (10, 8), final_image)

    assert split(reasoning + image_header_ids(tokenizer, 8, 8)) == (reasoning, (8, 8), None)
    text, grid, problem = split(reasoning + image_header_ids(tokenizer, 10, 12))
    assert (text, grid) == (reasoning, (8, 8)) and "10 x 12" in problem and "requested 8 x 8" in problem
    assert split(reasoning + image_header_ids(tokenizer, 10, 12), image_size=None) == (reasoning, (10, 12), None)
    sizeless = [special.image_token_id, 10, 11, special.boi_token_id]
    text, grid, problem = split(reasoning + sizeless, image_size=None)
    assert (text, grid) == (reasoning, (10, 8)) and "not size tokens" in problem and "default 10 x 8" in problem
    # Thinking mode (`final_image`): the picture follows the reasoning whatever ended it; otherwise EOS ends the text.
    text, grid, problem = split(reasoning + [special.eos_token_id])
    assert (text, grid) == (reasoning, (8, 8)) and "did not end its thinking" in problem
    assert split(reasoning + [special.eos_token_id], final_image=False) == (reasoning, None, None)
    assert split(reasoning + [special.mask_token_id, 5], stopped=True) == (reasoning, None, None)


def two_phase_thinking(model, tokenizer, prompts, thinking_steps, thinking_gen_length, image_steps, cfg_scale,
                       **settings):
    """Thinking mode as two engine calls, as it was written before it became interleaved decoding: the reasoning
    (thinking prompt, text until `<boi>` or EOS), then the codes after the reasoning and the requested header."""
    special = get_special_token_ids(tokenizer)
    header = image_header_ids(tokenizer, 8, 8)
    text_config = model._generation_settings(steps=thinking_steps, **settings)
    reasoning = model._decode([[build_thinking_prompt(tokenizer, p)] for p in prompts], thinking_gen_length,
                              text_config, _Guidance("none"), special.mask_token_id, special.image_token_offset,
                              stop_ids=[special.boi_token_id, special.eos_token_id])
    conditional = []
    for prompt, ids in zip(prompts, reasoning.outputs(cut_at_stop=True)):
        ids = ids.tolist()
        if ids[-1] == special.boi_token_id:
            ids = ids[: len(ids) - 1 - ids[::-1].index(special.image_token_id)]
        elif ids[-1] == special.eos_token_id:
            ids = ids[:-1]
        conditional.append(build_thinking_prompt(tokenizer, prompt) + ids + header)
    image_config = model._generation_settings(mode="text_to_image", steps=image_steps, cfg_scale=cfg_scale, **settings)
    guidance = _Guidance.text_to_image(cfg_scale, image_config.guidance_rescale)
    unconditional = build_text_to_image_unconditional_prompt(tokenizer, 8, 8, thinking=True)
    branches = [[c, unconditional] if guidance.guided else [c] for c in conditional]
    picture = model._decode(branches, 64, image_config, guidance, special.mask_token_id, special.image_token_offset,
                            logit_rules=[model._image_ids_only(special)])
    return [(c, codes - special.image_token_offset) for c, codes in zip(conditional, picture.outputs(False))]


@pytest.mark.parametrize("case", [
    dict(prompts=["A fox"]),
    dict(prompts=["A fox", "A red house by the sea at night"]),
    dict(prompts=["A fox", "A red house by the sea"], use_sprint=True, keep_ratio=0.5),
    dict(prompts=["A fox", "A cat"], cfg_scale=1.0),
    dict(prompts=["A fox", "A cat"], header_at=5),  # the model opens the picture itself
    dict(prompts=["A fox"], header_at=5, cfg_scale=1.0),  # the picture starts from the reasoning's cached blocks
], ids=["one", "batch", "sprint", "unguided", "opened", "opened-unguided"])
def test_thinking_mode_gives_the_ids_of_its_two_phases(model, tokenizer, no_progress, monkeypatch, case):
    case = dict(case)
    prompts, header_at = case.pop("prompts"), case.pop("header_at", None)
    settings = {**dict(block_length=8, thinking_steps=4, thinking_gen_length=24, image_steps=4, cfg_scale=3.0), **case}
    if header_at is not None:
        # The reasoning span (the one that stops at `<boi>`) writes the header at `header_at`.
        boi = get_special_token_ids(tokenizer).boi_token_id
        decode = type(model)._decode

        def reasoning_opens_a_picture(self, branches, length, config, guidance, *args, stop_ids=(), logit_rules=(),
                                      **kwargs):
            if boi in list(stop_ids):
                logit_rules = list(logit_rules) + [force(image_header_ids(tokenizer, 8, 8), header_at)]
            return decode(self, branches, length, config, guidance, *args, stop_ids=stop_ids,
                          logit_rules=logit_rules, **kwargs)

        monkeypatch.setattr(type(model), "_decode", reasoning_opens_a_picture)
    expected = two_phase_thinking(model, tokenizer, prompts, **settings)
    image_steps = settings.pop("image_steps")
    results = model.generate_image(prompts, tokenizer=tokenizer, mode="thinking", image_h=256, image_w=256,
                                   steps=image_steps, **settings)
    for prompt, result, (conditional, codes) in zip(prompts, results, expected):
        assert result.token_ids.tolist() == codes.tolist()
        assert result.sequences[0].tolist() == conditional + (codes + model.config.image_token_offset).tolist()
        if header_at is not None:
            reasoning = len(result.sequences[0]) - 64 - 4 - len(build_thinking_prompt(tokenizer, prompt))
            assert reasoning == header_at


def test_editing_without_guidance_and_without_the_image_branch(model, tokenizer, edit_case, no_progress):
    batch_sizes = []
    handle = model.model.register_forward_hook(
        lambda module, args, kwargs, out: batch_sizes.append(kwargs["input_ids"].shape[0]), with_kwargs=True
    )
    try:
        for text_scale, image_scale, branches in ((0.0, 0.0, 1), (4.0, 0.0, 2), (4.0, 1.5, 3)):
            batch_sizes.clear()
            result = model.edit_image(edit_case["image_token_ids"], 8, 8, "Make it red.", tokenizer=tokenizer,
                                      steps=4, block_length=8, cfg_text_scale=text_scale,
                                      cfg_image_scale=image_scale)
            assert set(batch_sizes) == {branches}
            assert result.token_ids.shape == (64,) and ((result.token_ids >= 0) & (result.token_ids < 64)).all()
    finally:
        handle.remove()


def test_edit_batch_equals_single_calls(model, tokenizer, edit_case, no_progress):
    source = {"image_tokens": edit_case["image_token_ids"], "h": 8, "w": 8}
    other = {"image_tokens": edit_case["image_token_ids"][::-1], "h": 8, "w": 8}
    instructions = [edit_case["instruction"], "Make it red and add a small boat."]
    batch = model.edit_image([source, other], instruction=instructions, tokenizer=tokenizer, **edit_case["kwargs"])
    assert isinstance(batch, list) and len(batch) == 2
    assert batch[0].token_ids.tolist() == edit_case["result"]["token_ids"]  # the recorded edit, inside a batch
    for entry, instruction, result in zip([source, other], instructions, batch):
        single = model.edit_image(entry, instruction=instruction, tokenizer=tokenizer, **edit_case["kwargs"])
        assert result.token_ids.tolist() == single.token_ids.tolist()
        assert result.sequences.tolist() == single.sequences.tolist()

    small = {"image_tokens": (edit_case["image_token_ids"] * 2)[:80], "h": 8, "w": 10}
    with pytest.raises(ValueError, match=r"shares one grid size; got \[\(8, 8\), \(8, 10\)\]"):
        model.edit_image([source, small], instruction=instructions, tokenizer=tokenizer, **edit_case["kwargs"])
    with pytest.raises(ValueError, match="2 instructions and 1 image entries"):
        model.edit_image([source], instruction=instructions, tokenizer=tokenizer)
    with pytest.raises(TypeError, match="list of `encode_images` entries, one per instruction"):
        model.edit_image(source, instruction=instructions, tokenizer=tokenizer)
    with pytest.raises(TypeError, match="Without `h` and `w`, `image_tokens` must be what `processor.encode_images`"):
        model.edit_image(edit_case["image_token_ids"], instruction="Make it red.", tokenizer=tokenizer)
    with pytest.raises(TypeError, match="Editing takes one source image per instruction, got 2"):
        model.edit_image([source, source], instruction="Make it red.", tokenizer=tokenizer)


def test_understanding_with_the_chat_template(model, tokenizer, edit_case, no_progress):
    from transformers_llada_uni.prompting_llada_uni import build_understanding_prompt

    result = model.understand_image(edit_case["image_token_ids"], 8, 8, "What is it?", tokenizer=tokenizer,
                                    use_chat_template=True, steps=4, block_length=8, gen_length=16,
                                    return_dict=True)
    prompt = build_understanding_prompt(tokenizer, edit_case["image_token_ids"], 8, 8, "What is it?",
                                        use_chat_template=True)
    assert result.sequences[0, : len(prompt)].tolist() == prompt
    assert result.text.startswith("What is it?")


# ------------------------------------------------------------------------------------------------ scheduler
def test_scheduler_step_plain_and_adaptive_rules():
    from transformers_llada_uni import LLaDAUniBlockScheduler

    # one sample, a block of 6, vocab 4: position i prefers token i % 4 with probability p[i]
    p = torch.tensor([0.97, 0.55, 0.6, 0.99, 0.52, 0.58])
    logits = torch.full((1, 6, 4), -30.0)
    for i, prob in enumerate(p.tolist()):
        logits[0, i, i % 4] = 0.0
        logits[0, i, (i + 1) % 4] = torch.log(torch.tensor((1 - prob) / prob)).item()
    sample = torch.full((1, 6), 9)
    to_fill = torch.tensor([[True, True, True, True, True, False]])  # position 5 is given: never changed

    plain = LLaDAUniBlockScheduler(block_length=6, num_inference_steps=3, threshold=0.95)
    assert plain.transfer_schedule == [2, 2, 2]
    out = plain.step(logits, 0, sample, to_fill)
    # two positions above the threshold: both committed, nothing else
    assert out.transfer_index[0].tolist() == [True, False, False, True, False, False]
    assert out.prev_sample[0].tolist() == [0, 9, 9, 3, 9, 9]
    torch.testing.assert_close(out.sampled_probs[0], p, atol=1e-5, rtol=0)
    # no confident position left: the schedule's count, best first: the schedule's count, best first
    out = plain.step(logits, 1, sample, to_fill & ~out.transfer_index)
    assert out.transfer_index[0].tolist() == [False, True, True, False, False, False]

    adaptive = LLaDAUniBlockScheduler(block_length=6, num_inference_steps=4, threshold=0.95, adaptive=True)
    out = adaptive.step(logits, 0, sample, to_fill)
    # ceil(5 / 4) = 2 best (0.99, 0.97) plus every confident one: the same two
    assert out.transfer_index[0].tolist() == [True, False, False, True, False, False]
    out = adaptive.step(logits, 2, sample, torch.tensor([[False, True, True, False, True, False]]))
    # ceil(3 / 2) = 2: the two best of the three left
    assert out.transfer_index[0].tolist() == [False, True, True, False, False, False]
    assert out.prev_sample[0, 5] == 9


# ------------------------------------------------------------------------------------------------ bad input named
@pytest.mark.parametrize("h, w, name", [(0, 8, "h"), (8, 0, "w"), (8.0, 8, "h"), (8, 2.5, "w"), (True, 8, "h")])
def test_edit_grid_sides_are_named(model, tokenizer, edit_case, h, w, name):
    with pytest.raises(ValueError, match=rf"`{name}` must be a positive int .*got {w if name == 'w' else h!r}"):
        model.edit_image(edit_case["image_token_ids"], h, w, "Make it red.", tokenizer=tokenizer)
    with pytest.raises(ValueError, match=rf"`{name}` must be a positive int"):
        model.edit_image({"image_tokens": edit_case["image_token_ids"], "h": h, "w": w}, instruction="Make it red.",
                         tokenizer=tokenizer)


def test_empty_ids_and_empty_batches_are_named(model, tokenizer):
    with pytest.raises(ValueError, match=r"`input_ids` is empty \(shape \(1, 0\)\)"):
        model(torch.zeros((1, 0), dtype=torch.long))
    with pytest.raises(ValueError, match=r"`input_ids` is empty \(shape \(0, 4\)\)"):
        model(torch.zeros((0, 4), dtype=torch.long))
    with pytest.raises(ValueError, match=r"`inputs_embeds` is empty"):
        model(inputs_embeds=torch.zeros((1, 0, model.config.hidden_size)))
    with pytest.raises(ValueError, match=r"`input_ids` holds no prompt \(shape \(0, 4\)\)"):
        model.generate(torch.zeros((0, 4), dtype=torch.long), tokenizer=tokenizer, max_new_tokens=8)


def test_positions_past_the_trained_range_warn(model, tokenizer, no_progress):
    logger = hf_logging.get_logger(generation_llada_uni.__name__)
    prompt = torch.tensor([[991, 39, 378, 992, 542] * 4])  # 20 tokens
    limit = model.config.max_position_embeddings
    try:
        model.config.max_position_embeddings = 24
        with CaptureLogger(logger) as captured:
            model.generate(prompt, tokenizer=tokenizer, max_new_tokens=16, block_length=8, steps=2)
        assert "reach position" in captured.out and "past `max_position_embeddings` (24)" in captured.out
        model.config.max_position_embeddings = 16
        with CaptureLogger(logger) as captured:
            model.generate(prompt, tokenizer=tokenizer, max_new_tokens=8, block_length=8, steps=2)
        assert "The prompt (20 tokens) is longer than `max_position_embeddings` (16)" in captured.out
        model.config.max_position_embeddings = 64
        with CaptureLogger(logger) as captured:
            model.generate(prompt, tokenizer=tokenizer, max_new_tokens=8, block_length=8, steps=2)
        assert "max_position_embeddings" not in captured.out
    finally:
        model.config.max_position_embeddings = limit
