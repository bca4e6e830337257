"""Conversations with pictures and interleaved text-and-image generation (issue 16), on the tiny released model."""

import pytest
import torch

from transformers_llada_uni.prompting_llada_uni import (
    build_text_to_image_prompt,
    build_text_to_image_unconditional_prompt,
    build_thinking_prompt,
    encode_text,
    get_special_token_ids,
    image_block_ids,
    image_header_ids,
)

from generation_testing import force, model, quiet, tokenizer  # noqa: F401


pytestmark = pytest.mark.usefixtures("quiet")

TEXT = dict(steps=4, block_length=8, max_new_tokens=24)
PICTURE = dict(image_h=256, image_w=256, image_steps=4, cfg_scale=3.0)


@pytest.fixture(scope="module")
def special(tokenizer):
    return get_special_token_ids(tokenizer, None)


def picture(special, seed):
    codes = torch.randint(0, special.image_codebook_size, (64,), generator=torch.Generator().manual_seed(seed))
    return {"image_tokens": (codes + special.image_token_offset).tolist(), "h": 8, "w": 8}


def user(text, image=None):
    return {"role": "user", "content": ([{"type": "image", "image": image}] if image else [])
            + [{"type": "text", "text": text}]}


def text_only(output):
    assert [segment["type"] for segment in output.segments] in ([], ["text"])
    return output.segments[0]["token_ids"] if output.segments else []


# ------------------------------------------------------------------------------------------------ conversations
def test_three_turns_with_pictures_match_hand_built_prompts_with_and_without_reuse(model, tokenizer, special):
    questions = [user("What is this?", picture(special, 0)), user("Tell me more."),
                 user("Compare with this one.", picture(special, 1))]
    reused, fresh, messages, history = [], [], [], None
    for question in questions:
        messages = (history.messages if history else []) + [question]
        output = model.chat(messages, history=history, tokenizer=tokenizer, **TEXT)
        reused.append(output)
        fresh.append(model.chat(messages, tokenizer=tokenizer, **TEXT))
        history = output.history
    # By hand: the template's text pieces, the image blocks and the previous answers' ids, then the engine.
    ids = lambda text: encode_text(tokenizer, text)  # noqa: E731
    prompt = ids("<role>SYSTEM</role>detailed thinking off<|role_end|>")
    for turn, question in enumerate(questions):
        prompt = prompt + ids("<role>HUMAN</role>")
        for part in question["content"]:
            if part["type"] == "image":
                prompt = prompt + image_block_ids(tokenizer, part["image"]["image_tokens"], 8, 8)
            else:
                prompt = prompt + ids(part["text"])
        prompt = prompt + ids("<|role_end|><role>ASSISTANT</role>")
        generated = model.generate(torch.tensor([prompt]), tokenizer=tokenizer, **TEXT)[0, len(prompt):].tolist()
        assert special.boi_token_id not in generated  # the model opened no picture: plain text generation applies
        answer = generated[:-1] if generated and generated[-1] == special.eos_token_id else generated
        assert text_only(reused[turn]) == answer
        assert text_only(fresh[turn]) == answer
        prompt = prompt + answer + ids("<|role_end|>")
    assert reused[0].reused_tokens == 0 and all(output.reused_tokens > 0 for output in reused[1:])
    assert all(output.reused_tokens == 0 for output in fresh)
    # The history holds the conversation with the replies as segments; its prompt starts with the ids of turn 3.
    assert [m["role"] for m in history.messages] == ["user", "assistant"] * 3
    assert reused[2].sequences[0, : len(prompt)].tolist() == prompt[: len(reused[2].sequences[0])]


def test_batched_conversations_equal_single_ones(model, tokenizer, special):
    first = [[user("Describe it.", picture(special, 2))], [user("Hi")]]
    singles = [model.chat(messages, tokenizer=tokenizer, **TEXT) for messages in first]
    batch = model.chat(first, tokenizer=tokenizer, **TEXT)
    assert [b.segments for b in batch] == [s.segments for s in singles]
    second = [s.history.messages + [user("Why?", picture(special, 3) if i else None)] for i, s in enumerate(singles)]
    histories = [s.history for s in singles]
    singles = [model.chat(m, history=h, tokenizer=tokenizer, **TEXT) for m, h in zip(second, histories)]
    batch = model.chat(second, history=histories, tokenizer=tokenizer, **TEXT)
    assert [b.segments for b in batch] == [s.segments for s in singles]
    assert all(b.reused_tokens > 0 for b in batch)


def test_a_generated_picture_is_in_the_next_turns_prompt(model, tokenizer, special):
    header = image_header_ids(tokenizer, 8, 8)
    first = model.chat([user("Draw a fox.")], tokenizer=tokenizer, logit_rules=[force(header, 0)],
                       **{**TEXT, **PICTURE, "max_new_tokens": 80})
    assert first.segments[0]["type"] == "image"
    codes = first.segments[0]["image"]["image_tokens"]
    block = image_block_ids(tokenizer, codes, 8, 8)
    second = model.chat(first.history.messages + [user("Make it red.")], history=first.history,
                        tokenizer=tokenizer, **TEXT)
    prompt = second.sequences[0].tolist()
    start = prompt.index(special.boi_token_id) - 3
    assert prompt[start : start + len(block)] == block
    assert second.reused_tokens > 0


# ------------------------------------------------------------------------------------------------ interleaved
def test_forced_header_gives_generate_image_codes_then_text_continues(model, tokenizer, special):
    header = image_header_ids(tokenizer, 8, 8)
    conditional = build_text_to_image_prompt(tokenizer, "A fox in the snow", 8, 8)[: -len(header)]
    unconditional = build_text_to_image_unconditional_prompt(tokenizer, 8, 8)[: -len(header)]
    settings = dict(steps=4, block_length=8, cfg_scale=3.0)
    output = model.generate_interleaved(conditional, tokenizer=tokenizer, unconditional_ids=unconditional,
                                        logit_rules=[force(header, 0)], image_steps=4, max_new_tokens=90,
                                        **settings)
    expected = model.generate_image("A fox in the snow", tokenizer=tokenizer, image_h=256, image_w=256, **settings)
    assert output.segments[0]["type"] == "image"
    codes = torch.tensor(output.segments[0]["image"]["image_tokens"]) - special.image_token_offset
    assert codes.tolist() == expected.token_ids.tolist()
    # `<|/image|>` closes the picture and text follows until the length limit or EOS.
    sequence = output.sequences[0].tolist()
    after = len(conditional) + len(header) + 64
    assert sequence[after] == special.end_image_token_id
    assert len(sequence) > after + 1 and [s["type"] for s in output.segments][1:] in (["text"], [])
    if len(output.segments) > 1:
        assert output.segments[1]["token_ids"] == sequence[after + 1 : after + 1 + len(output.segments[1]["token_ids"])]


def test_thinking_mode_is_interleaved_generation_with_one_final_picture(model, tokenizer, special):
    header = image_header_ids(tokenizer, 8, 8)
    unconditional = build_text_to_image_unconditional_prompt(tokenizer, 8, 8, thinking=True)[: -len(header)]
    settings = dict(block_length=8, cfg_scale=3.0)
    prompts = ["A fox", "A red house by the sea"]
    thought = model.generate_image(prompts, tokenizer=tokenizer, mode="thinking", image_h=256, image_w=256, steps=4,
                                   thinking_steps=2, thinking_gen_length=16, **settings)
    for prompt, expected in zip(prompts, thought):
        # The same prompt, the reasoning's settings for text, and the picture forced after the reasoning.
        output = model.generate_interleaved(build_thinking_prompt(tokenizer, prompt), tokenizer=tokenizer,
                                            unconditional_ids=unconditional, image_size=(8, 8), final_image=True,
                                            steps=2, max_new_tokens=16, image_steps=4, **settings)
        assert [segment["type"] for segment in output.segments] == ["text", "image"]
        assert output.segments[0]["text"] == expected.thinking
        codes = torch.tensor(output.segments[1]["image"]["image_tokens"]) - special.image_token_offset
        assert codes.tolist() == expected.token_ids.tolist()
        assert output.sequences[0].tolist() == expected.sequences[0].tolist() + [special.end_image_token_id]


def test_a_final_picture_ends_the_output_where_the_model_opens_it(model, tokenizer, special):
    header = image_header_ids(tokenizer, 8, 8)
    prompt = build_thinking_prompt(tokenizer, "A fox")
    unconditional = build_text_to_image_unconditional_prompt(tokenizer, 8, 8, thinking=True)[: -len(header)]
    settings = dict(steps=4, block_length=8, cfg_scale=3.0, image_steps=4, max_new_tokens=90,
                    unconditional_ids=unconditional, logit_rules=[force(header, 5)], tokenizer=tokenizer)
    going_on = model.generate_interleaved(prompt, **settings)
    final = model.generate_interleaved(prompt, final_image=True, **settings)
    assert [segment["type"] for segment in final.segments] == ["text", "image"]
    assert len(final.segments[0]["token_ids"]) == 5
    # Up to the picture's end both are one decode; without `final_image` text follows it.
    assert going_on.segments[:2] == final.segments
    assert going_on.sequences[0, : final.sequences.shape[1]].tolist() == final.sequences[0].tolist()
    assert final.sequences[0, -1] == special.end_image_token_id
    assert going_on.sequences.shape[1] > final.sequences.shape[1]


def test_header_without_size_tokens_gets_the_default_grid(model, tokenizer, special, caplog):
    sizeless = [special.image_token_id, 10, 11, special.boi_token_id]
    output = model.chat([user("Draw.")], tokenizer=tokenizer, logit_rules=[force(sizeless, 0)],
                        **{**TEXT, "image_h": 320, "image_w": 256, "image_steps": 4, "max_new_tokens": 90})
    assert "not size tokens" in caplog.text and "default 10 x 8 grid" in caplog.text
    assert output.segments[0]["type"] == "image"
    assert (output.segments[0]["image"]["h"], output.segments[0]["image"]["w"]) == (10, 8)
    sequence = output.sequences[0].tolist()
    rewritten = image_header_ids(tokenizer, 10, 8)
    start = sequence.index(special.boi_token_id) - 3
    assert sequence[start : start + 4] == rewritten and 10 not in sequence[start : start + 4]


def test_forced_image_size_rewrites_the_header(model, tokenizer, special):
    header = image_header_ids(tokenizer, 10, 10)
    output = model.chat([user("Draw.")], tokenizer=tokenizer, logit_rules=[force(header, 0)], image_size=(8, 8),
                        **{**TEXT, **PICTURE, "max_new_tokens": 70})
    assert (output.segments[0]["image"]["h"], output.segments[0]["image"]["w"]) == (8, 8)


# ------------------------------------------------------------------------------------------------ streaming, stopping
class Recorder:
    def __init__(self):
        self.puts, self.ended = [], False

    def put(self, value):
        self.puts.append(value.tolist())

    def end(self):
        self.ended = True


def test_text_streams_block_by_block(model, tokenizer, special):
    recorder = Recorder()
    output = model.chat([user("Hello there")], tokenizer=tokenizer, streamer=recorder, **TEXT)
    prompt_length = output.sequences.shape[1] - len(text_only(output))
    assert recorder.puts[0] == output.sequences[0, :prompt_length].tolist()
    streamed = [t for put in recorder.puts[1:] for t in put]
    assert streamed[: len(text_only(output))] == text_only(output)
    assert len(recorder.puts) > 2 and recorder.ended


def test_picture_progress_and_callback_stop(model, tokenizer, special):
    header = image_header_ids(tokenizer, 8, 8)
    seen = []
    model.chat([user("Draw.")], tokenizer=tokenizer, logit_rules=[force(header, 0)], callback=seen.append,
               **{**TEXT, **PICTURE, "max_new_tokens": 70})
    image_blocks = {(info.block, info.num_blocks) for info in seen if info.kind == "image"}
    (num_blocks,) = {n for _, n in image_blocks}
    assert num_blocks >= 8 and {block for block, _ in image_blocks} == set(range(num_blocks))

    def stop_in_picture(info):
        return info.kind == "image" and info.block == 2

    output = model.chat([user("Draw.")], tokenizer=tokenizer, logit_rules=[force(header, 0)],
                        callback=stop_in_picture, **{**TEXT, **PICTURE, "max_new_tokens": 70})
    assert output.stopped and all(segment["type"] != "image" for segment in output.segments)
    assert special.boi_token_id not in output.sequences[0, -4:].tolist()


def test_invalid_inputs_are_named(model, tokenizer):
    with pytest.raises(TypeError, match="messages"):
        model.chat("hello", tokenizer=tokenizer)
    with pytest.raises(TypeError, match="image ids"):
        model.chat([{"role": "user", "content": [{"type": "image", "image": "fox.png"}]}], tokenizer=tokenizer)
    with pytest.raises(ValueError, match="unconditional_ids"):
        model.generate_interleaved([1, 2, 3], tokenizer=tokenizer)
    with pytest.raises(ValueError, match="image_size"):
        model.chat([user("x")], tokenizer=tokenizer, image_size=(8,))


# ------------------------------------------------------------------------------------------------ pipeline
def test_pipeline_decodes_pictures_and_continues_the_conversation(tiny_released_dir, images_dir, tokenizer):
    from diffusers_llada_uni import LLaDAUniInterleavedPipeline

    pipe = LLaDAUniInterleavedPipeline.from_released(tiny_released_dir)
    pipe.set_progress_bar_config(disable=True)
    header = image_header_ids(tokenizer, 8, 8)
    messages = [{"role": "user", "content": [{"type": "image", "image": images_dir / "square_64x64_rgba.png"},
                                             {"type": "text", "text": "Draw it again."}]}]
    settings = dict(steps=4, image_steps=4, block_length=8, max_new_tokens=70, cfg_scale=3.0, num_inference_steps=1)
    out = pipe(messages, generation_kwargs={"logit_rules": [force(header, 0)]}, **settings)
    (image,) = out.images
    assert out.segments[0]["type"] == "image" and out.segments[0]["image"] is image
    assert image.size == (8 * 32, 8 * 32)
    codes = pipe(messages, output_type="codes", generation_kwargs={"logit_rules": [force(header, 0)]}, **settings)
    assert codes.segments[0]["image"] is None
    assert torch.equal(codes.segments[0]["image_tokens"], out.segments[0]["image_tokens"])
    follow = pipe(out.history.messages + [{"role": "user", "content": "Thanks."}], history=out.history,
                  output_type="codes", **settings)
    assert follow.history.messages[-1]["role"] == "assistant" and len(follow.history.messages) == 4


# ------------------------------------------------------------------------------------------------ command line
def test_cli_chat_turns_with_a_picture_and_one_line_failures(tiny_released_dir, images_dir, tmp_path, monkeypatch,
                                                             capsys):
    import io

    from llada_uni_cli.main import main

    transcript = tmp_path / "talk.md"
    script = f"/image {images_dir / 'square_64x64_rgba.png'}\nWhat is it?\n/image {tmp_path / 'missing.png'}\nMore?\n"
    monkeypatch.setattr("sys.stdin", io.StringIO(script))
    common = ["chat", "--model", str(tiny_released_dir), "--no-progress", "--transcript", str(transcript),
              "--steps", "4", "--block-length", "8", "--max-new-tokens", "16"]
    assert main(common) == 0
    captured = capsys.readouterr()
    assert "missing.png' does not exist" in captured.err and "Traceback" not in captured.err
    text = transcript.read_text()
    assert text.count("**You:**") == 2 and "square_64x64_rgba.png" in text
    # An existing transcript is not replaced unless asked.
    monkeypatch.setattr("sys.stdin", io.StringIO("Hi\n"))
    assert main(common) == 1
    assert "exists" in capsys.readouterr().err and transcript.read_text() == text
