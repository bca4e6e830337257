# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""End-to-end pipelines on the tiny checkpoint: text-to-image, editing, understanding."""

import json

import numpy as np
import PIL.Image
import pytest
import torch

from diffusers_llada_uni import (
    LLaDAUniDecoderPipeline,
    LLaDAUniImageEditPipeline,
    LLaDAUniImagePipelineOutput,
    LLaDAUniTextToImagePipeline,
    LLaDAUniUnderstandingPipeline,
)


def _case(expected_dir, name):
    with open(expected_dir / f"{name}.json", encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def t2i(tiny_released_dir):
    pipe = LLaDAUniTextToImagePipeline.from_released(tiny_released_dir)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def editor(t2i):
    return LLaDAUniImageEditPipeline(**t2i.components)


@pytest.fixture(scope="module")
def reader(t2i):
    return LLaDAUniUnderstandingPipeline(**t2i.components)


class _Calls:
    def __init__(self, module):
        self.count = 0
        self.handle = module.register_forward_pre_hook(self._hook)

    def _hook(self, *args):
        self.count += 1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.remove()


def _t2i_kwargs(case):
    kwargs = case["kwargs"]
    assert kwargs["gen_length"] == (kwargs["image_h"] // 32) * (kwargs["image_w"] // 32)  # the pipeline's default
    return {
        "height": kwargs["image_h"], "width": kwargs["image_w"], "steps": kwargs["steps"],
        "block_length": kwargs["block_length"], "cfg_scale": kwargs["cfg_scale"],
    }


def test_parts_are_shared_and_typed(t2i, editor, reader):
    # diffusers' own way to switch tasks on loaded parts works too
    for pipe in (editor, reader, LLaDAUniImageEditPipeline.from_pipe(t2i), LLaDAUniUnderstandingPipeline.from_pipe(t2i)):
        for name in ("model", "processor", "image_tokenizer", "decoder", "turbo_decoder"):
            assert getattr(pipe, name) is getattr(t2i, name)
    assert isinstance(t2i.decoder, LLaDAUniDecoderPipeline) and not t2i.decoder.config.turbo
    assert isinstance(t2i.turbo_decoder, LLaDAUniDecoderPipeline) and t2i.turbo_decoder.config.turbo
    assert t2i.get_decoder() is t2i.turbo_decoder and t2i.get_decoder("normal") is t2i.decoder
    assert t2i.to("cpu") is t2i and t2i.turbo_decoder.device.type == "cpu"
    assert t2i._generation_kwargs(None) == {"show_progress_bar": False}  # the fixture disabled the bars


def test_text_to_image_end_to_end(t2i, expected_dir):
    case = _case(expected_dir, "t2i")
    out = t2i(case["prompt"], **_t2i_kwargs(case), num_inference_steps=2, generator=torch.Generator().manual_seed(0))
    assert isinstance(out, LLaDAUniImagePipelineOutput)
    h, w = case["result"]["h"], case["result"]["w"]
    assert out.grid_sizes == [(h, w)]
    assert out.image_tokens[0].tolist() == case["result"]["token_ids"]
    image = out.images[0]
    assert isinstance(image, PIL.Image.Image)
    assert image.size == (w * 16 * 2, h * 16 * 2) == (case["kwargs"]["image_w"], case["kwargs"]["image_h"])
    assert out.thinking == [None]

    # The same codes through the decoder alone give the same picture: the pipeline only chains the parts.
    direct = t2i.turbo_decoder(
        out.image_tokens[0], grid_size=(h, w), num_inference_steps=2, generator=torch.Generator().manual_seed(0)
    ).images[0]
    np.testing.assert_array_equal(np.asarray(direct), np.asarray(image))


def test_text_to_image_codes_output_skips_the_decoder(t2i, expected_dir):
    case = _case(expected_dir, "t2i")
    with _Calls(t2i.turbo_decoder.transformer) as dit, _Calls(t2i.decoder.transformer) as dit_normal:
        out = t2i(case["prompt"], **_t2i_kwargs(case), output_type="codes")
    assert out.images is None and dit.count == 0 and dit_normal.count == 0
    assert out.image_tokens[0].tolist() == case["result"]["token_ids"]


def test_batched_prompts_and_thinking(t2i, expected_dir):
    case = _case(expected_dir, "t2i")
    kwargs = {**_t2i_kwargs(case), "output_type": "np", "num_inference_steps": 1}
    out = t2i([case["prompt"], "A blue boat"], generator=[torch.Generator().manual_seed(i) for i in range(2)], **kwargs)
    assert out.images.shape == (2, case["kwargs"]["image_h"], case["kwargs"]["image_w"], 3)
    assert len(out.image_tokens) == 2 and out.grid_sizes == [(case["result"]["h"], case["result"]["w"])] * 2
    assert out.image_tokens[0].tolist() == case["result"]["token_ids"]

    thought = t2i(
        "A red fox", height=256, width=256, steps=2, block_length=8, thinking=True,
        generation_kwargs={"thinking_gen_length": 16}, output_type="pil", num_inference_steps=1,
    )
    assert isinstance(thought.thinking[0], str)
    assert thought.grid_sizes == [(8, 8)] and thought.images[0].size == (256, 256)


def test_image_tokens_input_skips_the_language_model(t2i, expected_dir):
    case = _case(expected_dir, "t2i")
    codes, grid = case["result"]["token_ids"], (case["result"]["h"], case["result"]["w"])
    with _Calls(t2i.model) as lm:
        out = t2i(image_tokens=codes, grid_size=grid, decoder="normal", num_inference_steps=2, output_type="pt",
                  generator=torch.Generator().manual_seed(3))
    assert lm.count == 0
    direct = t2i.decoder(codes, grid_size=grid, num_inference_steps=2, output_type="pt",
                         generator=torch.Generator().manual_seed(3)).images
    torch.testing.assert_close(out.images, direct, atol=0, rtol=0)
    assert out.image_tokens[0].tolist() == codes


def test_editing_end_to_end(editor, expected_dir):
    case = _case(expected_dir, "edit")
    source = {"image_tokens": case["image_token_ids"], "h": case["h"], "w": case["w"]}
    out = editor(image_tokens=source, prompt=case["instruction"], **case["kwargs"], num_inference_steps=1)
    assert out.image_tokens[0].tolist() == case["result"]["token_ids"]
    assert out.grid_sizes == [(case["h"], case["w"])]
    assert out.images[0].size == (case["w"] * 32, case["h"] * 32)


def test_editing_batches_each_grid_size(editor, expected_dir):
    case = _case(expected_dir, "edit")
    source = {"image_tokens": case["image_token_ids"], "h": case["h"], "w": case["w"]}
    wide = {"codes": [(5 * i) % 64 for i in range(80)], "h": 8, "w": 10}
    calls = []
    edit_image = editor.model.edit_image

    def spy(*args, **kwargs):
        calls.append(len(kwargs["instruction"]))
        return edit_image(*args, **kwargs)

    editor.model.edit_image = spy
    try:
        out = editor(image_tokens=[source, wide, source], prompt=[case["instruction"], "Blue.", case["instruction"]],
                     **case["kwargs"], output_type="codes")
    finally:
        del editor.model.edit_image
    assert sorted(calls) == [1, 2]  # the two 8 x 8 sources in one batch, the 8 x 10 one alone
    assert out.grid_sizes == [(8, 8), (8, 10), (8, 8)]
    assert out.image_tokens[0].tolist() == out.image_tokens[2].tolist() == case["result"]["token_ids"]


def test_editing_from_a_picture(editor, images_dir):
    out = editor(
        images_dir / "square_64x64_rgba.png", "Make it a watercolor painting.", steps=2, block_length=8,
        image_kwargs={"edit_image_size": 128}, num_inference_steps=1, output_type="pil",
    )
    (h, w), = out.grid_sizes
    assert (h, w) == (8, 8)  # the 128 px crop budget: 128 x 128 px, 16 px per code
    assert len(out.image_tokens[0]) == h * w
    assert out.images[0].size == (w * 32, h * 32)


def test_understanding_gives_the_recorded_text(reader, expected_dir, images_dir):
    case = _case(expected_dir, "understand")
    source = {"image_tokens": case["image_token_ids"], "h": case["h"], "w": case["w"]}
    out = reader(image_tokens=source, prompt=case["question"], **case["kwargs"])
    assert out.text == [case["text"]]
    assert out.sequences[0].tolist() == case["output_ids"]
    # From the picture: the understanding resize and the image tokenizer give the recorded ids, hence the text.
    from_picture = reader(images_dir / "landscape_150x100.png", case["question"], **case["kwargs"])
    assert from_picture.text == [case["text"]]
    both = reader(image_tokens=source, prompt=[case["question"], case["question"]], **case["kwargs"])
    assert both.text == [case["text"]] * 2


def _record_onloads(pipe, events):
    """Log which part the offload hooks bring to the execution device, and when the language model leaves."""
    parts = {"model": pipe.model, "image_tokenizer": pipe.image_tokenizer}
    for kind, decoder in (("normal", pipe.decoder), ("turbo", pipe.turbo_decoder)):
        parts.update({f"{kind}.{name}": getattr(decoder, name) for name in decoder.model_cpu_offload_seq.split("->")})
    for name, module in parts.items():
        hook = module._hf_hook
        original = hook.pre_forward

        def pre_forward(module, *args, _name=name, _original=original, **kwargs):
            if not events or events[-1] != f"on:{_name}":
                events.append(f"on:{_name}")
            return _original(module, *args, **kwargs)

        hook.pre_forward = pre_forward
    (model_hook,) = [h for h in pipe._all_hooks if h.model is pipe.model]
    offload = model_hook.offload
    model_hook.offload = lambda: (events.append("off:model"), offload())[1]


def test_model_cpu_offload_runs_one_part_at_a_time(tiny_released_dir, t2i, expected_dir, images_dir):
    # No accelerator here: the hooks move weights between "cpu" and "cpu", which still runs every hook in order.
    pipe = LLaDAUniTextToImagePipeline.from_released(tiny_released_dir)
    pipe.set_progress_bar_config(disable=True)
    pipe.enable_model_cpu_offload(device="cpu")
    assert all(hasattr(d.transformer, "_hf_hook") for d in (pipe.decoder, pipe.turbo_decoder))
    case = _case(expected_dir, "t2i")
    kwargs = {**_t2i_kwargs(case), "num_inference_steps": 2}
    events = []
    _record_onloads(pipe, events)
    out = pipe(case["prompt"], generator=torch.Generator().manual_seed(0), **kwargs)
    assert out.image_tokens[0].tolist() == case["result"]["token_ids"]
    expected = t2i(case["prompt"], generator=torch.Generator().manual_seed(0), **kwargs).images[0]
    np.testing.assert_array_equal(np.asarray(out.images[0]), np.asarray(expected))
    # The language model is on the device for all its blocks and leaves before the decoder's parts come, in order.
    assert events == ["on:model", "off:model", "on:turbo.vq_embedder", "on:turbo.transformer", "on:turbo.vae"]

    reader = LLaDAUniUnderstandingPipeline(**pipe.components)
    reader.enable_model_cpu_offload(device="cpu")
    case = _case(expected_dir, "understand")
    events.clear()
    _record_onloads(reader, events)
    answer = reader(images_dir / "landscape_150x100.png", case["question"], **case["kwargs"])
    assert answer.text == [case["text"]]
    assert events == ["on:image_tokenizer", "on:model"]

    reader.remove_all_hooks()
    assert not any(hasattr(m, "_hf_hook") for m in (reader.model, reader.decoder.transformer, reader.decoder.vae))
    with pytest.raises(ValueError, match="enable_model_cpu_offload"):
        reader.enable_sequential_cpu_offload(device="cpu")


def test_save_pretrained_from_pretrained(t2i, tmp_path, expected_dir):
    target = tmp_path / "converted"
    t2i.save_pretrained(target)
    assert (target / "config.json").is_file()
    assert (target / "image_tokenizer" / "config.json").is_file()
    assert (target / "decoder" / "model_index.json").is_file()
    assert (target / "decoder-turbo" / "model_index.json").is_file()
    assert not [p for p in target.rglob("*") if p.suffix in (".bin", ".pt", ".pth", ".ckpt")]
    assert [p.name for p in tmp_path.iterdir()] == ["converted"]  # no temporary folder left behind

    loaded = LLaDAUniTextToImagePipeline.from_pretrained(target)
    loaded.set_progress_bar_config(disable=True)
    case = _case(expected_dir, "t2i")
    codes, grid = case["result"]["token_ids"], (case["result"]["h"], case["result"]["w"])
    for decoder in ("turbo", "normal"):
        kwargs = {"image_tokens": codes, "grid_size": grid, "decoder": decoder, "num_inference_steps": 2,
                  "output_type": "np"}
        a = t2i(**kwargs, generator=torch.Generator().manual_seed(1)).images
        b = loaded(**kwargs, generator=torch.Generator().manual_seed(1)).images
        np.testing.assert_array_equal(a, b)
    understand = _case(expected_dir, "understand")
    reader = LLaDAUniUnderstandingPipeline.from_pretrained(target, load_decoders=())
    assert reader.decoder is None and reader.turbo_decoder is None
    source = {"image_tokens": understand["image_token_ids"], "h": understand["h"], "w": understand["w"]}
    assert reader(image_tokens=source, prompt=understand["question"], **understand["kwargs"]).text == [
        understand["text"]
    ]


def test_from_pretrained_on_the_converter_output(tiny_released_dir, tmp_path, expected_dir):
    from llada_uni_cli.convert import convert

    out = convert(tiny_released_dir, tmp_path / "converted", verify=False, progress=False, log=lambda message: None)
    pipe = LLaDAUniUnderstandingPipeline.from_pretrained(out)
    pipe.set_progress_bar_config(disable=True)
    case = _case(expected_dir, "understand")
    source = {"image_tokens": case["image_token_ids"], "h": case["h"], "w": case["w"]}
    assert pipe(image_tokens=source, prompt=case["question"], **case["kwargs"]).text == [case["text"]]
    t2i = LLaDAUniTextToImagePipeline(**pipe.components)
    image = t2i(image_tokens=list(range(16)), grid_size=(4, 4), num_inference_steps=1).images[0]
    assert image.size == (128, 128)


def test_without_decoders_only_codes_come_out(t2i, expected_dir):
    case = _case(expected_dir, "edit")
    no_decoder = LLaDAUniImageEditPipeline(model=t2i.model, processor=t2i.processor, image_tokenizer=t2i.image_tokenizer)
    source = {"codes": t2i.processor.image_ids_to_codes(case["image_token_ids"]), "h": case["h"], "w": case["w"]}
    out = no_decoder(image_tokens=source, prompt=case["instruction"], **case["kwargs"], output_type="codes")
    assert out.image_tokens[0].tolist() == case["result"]["token_ids"]
    with pytest.raises(ValueError, match="turbo decoder is not loaded"):
        no_decoder(image_tokens=source, prompt=case["instruction"], **case["kwargs"], decoder="turbo")


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda p: p["t2i"]("a fox", output_type="jpeg"), ValueError, r"output_type.*'jpeg'"),
        (lambda p: p["t2i"]("a fox", image_tokens=[0] * 16, grid_size=(4, 4)), ValueError, "not both"),
        (lambda p: p["t2i"](), ValueError, "prompt"),
        (lambda p: p["t2i"](image_tokens=[0] * 15, grid_size=(4, 4)), ValueError, "h \\* w = 16"),
        (lambda p: p["t2i"](image_tokens=[64] * 16, grid_size=(4, 4)), ValueError, "outside the codebook"),
        (lambda p: p["t2i"](image_tokens=[0] * 16, grid_size=(0, 4)), ValueError, "positive"),
        (lambda p: p["t2i"](image_tokens=[0] * 16, grid_size=(4, 4), decoder="fast"), ValueError, "'fast'"),
        (lambda p: p["editor"](prompt="x"), ValueError, "exactly one of `image`"),
        (lambda p: p["editor"](image_tokens=[[{"codes": [0] * 4, "h": 2, "w": 2}] * 2], prompt="x"), ValueError,
         r"`image_tokens\[0\]` holds 2 pictures; this pipeline takes one picture per prompt"),
        (lambda p: p["editor"](image_tokens={"h": 2, "w": 2}, prompt="x"), TypeError, "image_tokens"),
        (lambda p: p["editor"](image_tokens={"codes": [0] * 3, "h": 2, "w": 2}, prompt="x"), ValueError,
         "holds 3 ids, but the grid h=2 x w=2 needs 4"),
        (lambda p: p["editor"](image_tokens={"codes": [0] * 4, "h": 2, "w": 2}, prompt=["a", "b"],
                               crop_mode="stretch"), ValueError, "crop_mode"),
        (lambda p: p["reader"](image_tokens=[{"codes": [0] * 4, "h": 2, "w": 2}] * 2, prompt=["a", "b", "c"]),
         ValueError, "2 images and 3 prompts"),
        (lambda p: p["reader"](image_tokens=[0, 1, 2, 3], prompt="x"), TypeError, "dict"),
    ],
)
def test_bad_input_is_rejected(t2i, editor, reader, call, error, message):
    with pytest.raises(error, match=message):
        call({"t2i": t2i, "editor": editor, "reader": reader})
