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


# ---------------------------------------------------------------------------------------------------------------------
# What diffusers' `PipelineTesterMixin` checks (its sdist ships no tests), for the end-to-end text-to-image pipeline,
# written as a user would call the pipeline.
# ---------------------------------------------------------------------------------------------------------------------

FAST = {"height": 256, "width": 256, "steps": 2, "block_length": 32, "num_inference_steps": 1}


def _seeded(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def converted_dir(t2i, tmp_path_factory):
    folder = tmp_path_factory.mktemp("e2e") / "converted"
    t2i.save_pretrained(folder)
    return folder


class TestTextToImagePipelineConformance:
    def test_save_load_local(self, t2i, converted_dir):
        loaded = LLaDAUniTextToImagePipeline.from_pretrained(converted_dir)
        loaded.set_progress_bar_config(disable=True)
        a = t2i("A red fox", output_type="np", generator=_seeded(), **FAST)
        b = loaded("A red fox", output_type="np", generator=_seeded(), **FAST)
        assert [c.tolist() for c in a.image_tokens] == [c.tolist() for c in b.image_tokens]
        np.testing.assert_array_equal(a.images, b.images)

    def test_components_round_trip(self, t2i):
        assert set(t2i.components) == {"model", "processor", "image_tokenizer", "decoder", "turbo_decoder"}
        rebuilt = LLaDAUniTextToImagePipeline(**t2i.components)
        rebuilt.set_progress_bar_config(disable=True)
        assert all(getattr(rebuilt, name) is part for name, part in t2i.components.items())
        a = t2i("A red fox", output_type="np", generator=_seeded(), **FAST).images
        b = rebuilt("A red fox", output_type="np", generator=_seeded(), **FAST).images
        np.testing.assert_array_equal(a, b)

    def test_dict_and_tuple_outputs_are_equivalent(self, t2i):
        as_dict = t2i("A red fox", output_type="np", generator=_seeded(), **FAST)
        as_tuple = t2i("A red fox", output_type="np", generator=_seeded(), return_dict=False, **FAST)
        assert isinstance(as_tuple, tuple) and len(as_tuple) == 4
        np.testing.assert_array_equal(as_dict.images, as_tuple[0])
        assert [c.tolist() for c in as_dict.image_tokens] == [c.tolist() for c in as_tuple[1]]
        assert as_dict.grid_sizes == as_tuple[2] and as_dict.thinking == as_tuple[3]
        assert as_dict.to_tuple()[0] is as_dict.images

    def test_output_types(self, t2i):
        runs = {kind: t2i("A red fox", output_type=kind, generator=_seeded(), **FAST).images
                for kind in ("pil", "np", "pt", "latent", "codes")}
        assert isinstance(runs["pil"], list) and isinstance(runs["pil"][0], PIL.Image.Image)
        assert runs["np"].shape == (1, 256, 256, 3) and runs["np"].dtype == np.float32
        assert runs["pt"].shape == (1, 3, 256, 256) and isinstance(runs["pt"], torch.Tensor)
        np.testing.assert_allclose(runs["np"][0], runs["pt"][0].permute(1, 2, 0).numpy(), atol=1e-6)
        np.testing.assert_array_equal(np.asarray(runs["pil"][0]), (runs["np"][0] * 255).round().astype(np.uint8))
        assert runs["latent"].shape == (1, 16, 32, 32)
        assert runs["codes"] is None

    def test_num_images_per_prompt(self, t2i):
        for prompts in (["A red fox"], ["A red fox", "A blue boat"]):
            for per_prompt in (1, 2):
                out = t2i(prompts, num_images_per_prompt=per_prompt, output_type="np",
                          generator=[_seeded(i) for i in range(len(prompts) * per_prompt)], **FAST)
                assert out.images.shape[0] == len(out.image_tokens) == len(prompts) * per_prompt
                # diffusers' order: every prompt's images together.
                for index, codes in enumerate(out.image_tokens):
                    assert codes.tolist() == out.image_tokens[index - index % per_prompt].tolist()
        out = t2i("A red fox", num_images_per_prompt=2, output_type="np", generator=_seeded(), **FAST)
        assert not np.array_equal(out.images[0], out.images[1])  # same codes, different decoder noise
        with pytest.raises(ValueError, match="3 generators for 2 images"):
            t2i("A red fox", num_images_per_prompt=2, generator=[_seeded(i) for i in range(3)], **FAST)
        with pytest.raises(ValueError, match="num_images_per_prompt"):
            t2i("A red fox", num_images_per_prompt=0, **FAST)
        decoded = t2i(image_tokens=list(range(64)), grid_size=(8, 8), num_images_per_prompt=3, decoder="turbo",
                      num_inference_steps=1, output_type="np")
        assert decoded.images.shape == (3, 256, 256, 3) and decoded.grid_sizes == [(8, 8)] * 3

    def test_batch_equals_single(self, t2i):
        prompts = ["A red fox", "A blue boat on a lake"]
        batch = t2i(prompts, output_type="latent", generator=[_seeded(1), _seeded(2)], **FAST)
        for index, prompt in enumerate(prompts):
            single = t2i(prompt, output_type="latent", generator=_seeded(1 + index), **FAST)
            assert batch.image_tokens[index].tolist() == single.image_tokens[0].tolist()
            # Batching changes the summation order of the decoder's matmuls only.
            torch.testing.assert_close(batch.images[index], single.images[0], atol=1e-4, rtol=1e-4)

    def test_callback_on_step_end(self, t2i):
        from diffusers.callbacks import PipelineCallback

        seen = []

        def callback(pipeline, step, timestep, callback_kwargs):
            if "image_tokens" in callback_kwargs:  # the language model's steps
                assert pipeline is t2i
                seen.append(("lm", step, timestep, callback_kwargs["image_tokens"].clone()))
                return {}
            assert pipeline is t2i.turbo_decoder
            seen.append(("decoder", step, sorted(callback_kwargs)))
            return {"latents": torch.zeros_like(callback_kwargs["latents"])}

        out = t2i("A red fox", output_type="latent", generator=_seeded(), callback_on_step_end=callback,
                  callback_on_step_end_tensor_inputs=["latents", "caption_features"],
                  **{**FAST, "num_inference_steps": 2})
        lm = [s for s in seen if s[0] == "lm"]
        # Blocks in order from 0, steps from 0 within each (at most `steps`), fewer masked codes after every step.
        blocks = [s[2] for s in lm]
        assert blocks == sorted(blocks) and blocks[0] == 0 and len(set(blocks)) >= 2
        for block in set(blocks):
            assert [s[1] for s in lm if s[2] == block] in ([0], [0, 1])
        masked = [int((s[3] == -1).sum()) for s in lm]
        assert lm[0][3].shape == (1, 64) and masked == sorted(masked, reverse=True) and 0 < masked[0] < 64
        assert masked[-1] == 0 and lm[-1][3].tolist() == [out.image_tokens[0].tolist()]
        assert [s[1:] for s in seen if s[0] == "decoder"] == [(0, ["caption_features", "latents"]),
                                                              (1, ["caption_features", "latents"])]
        assert torch.count_nonzero(out.images) == 0  # the callback's latents replaced the pipeline's

        class Stop(PipelineCallback):
            tensor_inputs = ["latents"]

            def callback_fn(self, pipeline, step_index, timestep, callback_kwargs):
                pipeline._interrupt = True
                return callback_kwargs

        calls = _Calls(t2i.turbo_decoder.transformer)
        with calls:
            t2i("A red fox", output_type="latent", callback_on_step_end=Stop(), **{**FAST, "num_inference_steps": 3})
        assert calls.count == 1
        with _Calls(t2i.model) as lm_calls, pytest.raises(ValueError, match=r"\['noise_pred'\].*offers"):
            t2i("A red fox", callback_on_step_end=callback, callback_on_step_end_tensor_inputs=["noise_pred"], **FAST)
        assert lm_calls.count == 0  # refused before the language model ran

    def test_model_cpu_offload(self, tiny_released_dir, t2i):
        pipe = LLaDAUniTextToImagePipeline.from_released(tiny_released_dir)
        pipe.set_progress_bar_config(disable=True)
        pipe.enable_model_cpu_offload(device="cpu")
        expected = t2i("A red fox", output_type="np", generator=_seeded(), **FAST).images
        for _ in range(2):  # the hooks survive a call and serve the next one
            offloaded = pipe("A red fox", output_type="np", generator=_seeded(), **FAST).images
            np.testing.assert_array_equal(offloaded, expected)
            assert all(hasattr(m, "_hf_hook") for m in (pipe.model, pipe.image_tokenizer, pipe.decoder.transformer))

    def test_to_dtype(self, tiny_released_dir):
        pipe = LLaDAUniTextToImagePipeline.from_released(tiny_released_dir)
        pipe.set_progress_bar_config(disable=True)
        assert pipe.to(torch.bfloat16) is pipe
        parts = [pipe.model, pipe.image_tokenizer]
        for decoder in (pipe.decoder, pipe.turbo_decoder):
            parts += [decoder.vq_embedder, decoder.transformer, decoder.vae]
        assert {part.dtype for part in parts} == {torch.bfloat16}
        assert pipe.dtype == torch.bfloat16
        out = pipe("A red fox", output_type="pt", generator=_seeded(), **FAST)
        assert out.images.shape == (1, 3, 256, 256) and torch.isfinite(out.images).all()

    def test_progress_bar_config(self, tiny_released_dir, capfd):
        pipe = LLaDAUniTextToImagePipeline.from_released(tiny_released_dir, load_decoders=("turbo",))
        capfd.readouterr()
        pipe("A red fox", **FAST)
        shown = capfd.readouterr().err
        assert "Blocks" in shown and "1/1" in shown  # the language model's bar, then the decoder's
        pipe.set_progress_bar_config(disable=True)
        assert pipe.turbo_decoder._progress_bar_config == {"disable": True}
        pipe("A red fox", **FAST)
        assert capfd.readouterr().err == ""


def test_from_pretrained_takes_dtype_device_map_and_variant(t2i, converted_dir, tmp_path, tiny_released_dir):
    import warnings

    # A folder whose weight files carry a variant, as `save_pretrained(..., variant="fp32")` writes them.
    folder = tmp_path / "variant"
    t2i.model.save_pretrained(folder, variant="fp32")
    t2i.processor.save_pretrained(folder)
    t2i.image_tokenizer.save_pretrained(folder / "image_tokenizer", variant="fp32")
    t2i.turbo_decoder.save_pretrained(folder / "decoder-turbo", variant="fp32")
    assert (folder / "decoder-turbo" / "transformer" / "diffusion_pytorch_model.fp32.safetensors").is_file()

    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # no deprecated `torch_dtype` on the way
        pipe = LLaDAUniTextToImagePipeline.from_pretrained(folder, variant="fp32", dtype=torch.float32,
                                                           device_map="cpu")
    pipe.set_progress_bar_config(disable=True)
    assert pipe.decoder is None and pipe.turbo_decoder is not None
    assert pipe.model.device.type == "cpu"
    a = pipe("A red fox", output_type="np", generator=_seeded(), **FAST)
    b = t2i("A red fox", output_type="np", generator=_seeded(), **FAST)
    np.testing.assert_array_equal(a.images, b.images)

    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        low = LLaDAUniTextToImagePipeline.from_pretrained(converted_dir, dtype=torch.bfloat16)
    parts = [low.model, low.image_tokenizer] + [getattr(low.turbo_decoder, n) for n in ("transformer", "vae")]
    assert {part.dtype for part in parts} == {torch.bfloat16}
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # the released VAE loads with `dtype` too
        released = LLaDAUniTextToImagePipeline.from_released(
            tiny_released_dir, torch_dtype=torch.bfloat16, load_decoders=("turbo",)
        )
    assert released.turbo_decoder.vae.dtype == torch.bfloat16
    with pytest.warns(FutureWarning, match="torch_dtype"):
        old_name = LLaDAUniTextToImagePipeline.from_pretrained(converted_dir, torch_dtype=torch.bfloat16,
                                                               load_decoders=())
    assert old_name.model.dtype == torch.bfloat16


def test_loading_only_the_parts_a_call_needs(t2i, converted_dir, images_dir):
    pipe = LLaDAUniTextToImagePipeline.from_pretrained(converted_dir, load_decoders=("turbo",), image_tokenizer=None,
                                                       model=t2i.model)
    assert pipe.model is t2i.model and pipe.image_tokenizer is None and pipe.decoder is None
    pipe.set_progress_bar_config(disable=True)
    assert pipe("A red fox", output_type="np", **FAST).images.shape == (1, 256, 256, 3)
    with pytest.raises(ValueError, match="normal decoder is not loaded"):
        pipe("A red fox", decoder="normal", **FAST)
    reader = LLaDAUniUnderstandingPipeline.from_pipe(pipe)
    with pytest.raises(ValueError, match="need the image tokenizer"):
        reader(images_dir / "landscape_150x100.png", "What is it?")


def test_negative_prompt_is_the_unconditional_branch_text(t2i):
    import inspect

    received = {}
    generate_image = t2i.model.generate_image

    def takes_negative_prompt(prompt, *args, negative_prompt=None, **kwargs):
        received["negative_prompt"] = negative_prompt
        return generate_image(prompt, *args, **kwargs)

    t2i.model.generate_image = takes_negative_prompt
    try:
        out = t2i(["A red fox", "A boat"], negative_prompt="blurry", num_images_per_prompt=2, output_type="codes",
                  **FAST)
        assert received["negative_prompt"] == ["blurry"] * 4 and len(out.image_tokens) == 4
        t2i(["A red fox", "A boat"], negative_prompt=["blurry", "dark"], output_type="codes", **FAST)
        assert received["negative_prompt"] == ["blurry", "dark"]
        with pytest.raises(ValueError, match="2 prompts and 3 negative prompts"):
            t2i(["A red fox", "A boat"], negative_prompt=["a", "b", "c"], output_type="codes", **FAST)
    finally:
        del t2i.model.generate_image
    if "negative_prompt" in inspect.signature(t2i.model.generate_image).parameters:
        # The original's unconditional text given explicitly changes nothing.
        default = t2i("A red fox", output_type="codes", **FAST).image_tokens[0]
        explicit = t2i("A red fox", negative_prompt="<uncondition>", output_type="codes", **FAST).image_tokens[0]
        assert explicit.tolist() == default.tolist()
    else:
        with pytest.raises(TypeError, match="takes no `negative_prompt`"):
            t2i("A red fox", negative_prompt="blurry", output_type="codes", **FAST)


def test_understanding_takes_a_batch_of_generated_images(t2i, reader):
    from diffusers.image_processor import VaeImageProcessor

    as_np = t2i(["A red fox", "A blue boat"], generator=[_seeded(0), _seeded(1)], output_type="np", **FAST).images
    assert as_np.shape == (2, 256, 256, 3) and as_np.dtype == np.float32
    settings = {"prompt": "What is it?", "steps": 2, "gen_length": 8, "block_length": 8}
    # The same pictures as `output_type="pil"` gives them (diffusers' conversion), and as `"pt"` does.
    from_pil = reader(VaeImageProcessor.numpy_to_pil(as_np), **settings)
    assert len(from_pil.text) == 2
    assert reader(as_np, **settings).text == from_pil.text
    assert reader(torch.from_numpy(as_np).permute(0, 3, 1, 2), **settings).text == from_pil.text
    assert reader(as_np[:1], **settings).sequences[0].tolist() == from_pil.sequences[0].tolist()


def test_editing_num_images_per_prompt_and_callback(editor, expected_dir):
    case = _case(expected_dir, "edit")
    source = {"image_tokens": case["image_token_ids"], "h": case["h"], "w": case["w"]}
    steps = []
    out = editor(image_tokens=source, prompt=case["instruction"], **case["kwargs"], num_images_per_prompt=2,
                 num_inference_steps=1, output_type="np", generator=[_seeded(0), _seeded(1)],
                 callback_on_step_end=lambda pipe, step, t, kwargs: steps.append(sorted(kwargs)) or {})
    assert [codes.tolist() for codes in out.image_tokens] == [case["result"]["token_ids"]] * 2
    assert out.images.shape[0] == 2 and not np.array_equal(out.images[0], out.images[1])
    # Every step of the language model, then the decoder's single step.
    assert steps[:-1] == [["image_tokens"]] * (len(steps) - 1) and len(steps) > 2 and steps[-1] == ["latents"]
