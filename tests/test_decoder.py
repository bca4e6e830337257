# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""The image decoder pipeline against the original's recordings, and its diffusers behaviour."""

import builtins
import json

import numpy as np
import PIL.Image
import pytest
import safetensors.torch
import torch
from diffusers import FlowMatchEulerDiscreteScheduler, ZImageTransformer2DModel
from diffusers.callbacks import PipelineCallback

from diffusers_llada_uni import (
    LLaDAUniDecoderPipeline,
    LLaDAUniFlowMatchScheduler,
    SigVQEmbedding,
    convert_released_decoder,
)


def _load_case(expected_dir, name):
    with open(expected_dir / f"{name}.json", encoding="utf-8") as f:
        meta = json.load(f)
    return meta, safetensors.torch.load_file(str(expected_dir / f"{name}.safetensors"))


def _rel(a, b):
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


@pytest.fixture(scope="module")
def normal_pipe(tiny_released_dir):
    pipe = LLaDAUniDecoderPipeline.from_released(tiny_released_dir, turbo=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def turbo_pipe(tiny_released_dir):
    pipe = LLaDAUniDecoderPipeline.from_released(tiny_released_dir, turbo=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


class _RecordTimes:
    """Records the `t` of every DiT forward."""

    def __init__(self, transformer):
        self.calls = []
        self._handle = transformer.register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, module, args, kwargs):
        t = args[1] if len(args) > 1 else kwargs["t"]
        self.calls.append(t.tolist())

    def remove(self):
        self._handle.remove()


def _reference_kwargs(meta, tensors):
    # The original's `num_steps` counts time points for the 50-step sampler (num_steps - 1 model calls) and
    # steps for the turbo one; the pipeline's `num_inference_steps` counts model calls.
    n_calls = len(meta["model_evaluation_times_t"])
    kwargs = {
        "image_tokens": meta["token_ids"],
        "grid_size": (meta["h"], meta["w"]),
        "num_inference_steps": n_calls,
        "latents": tensors["initial_latent"][:, :, 0],
    }
    if meta["mode"] == "turbo":
        kwargs["step_noises"] = [tensors[f"step_noise_{i}"][:, :, 0] for i in range(n_calls)]
    return kwargs


@pytest.mark.parametrize("case", ["decode_normal", "decode_turbo"])
def test_reproduces_original_decode(case, normal_pipe, turbo_pipe, expected_dir):
    meta, tensors = _load_case(expected_dir, case)
    pipe = turbo_pipe if meta["mode"] == "turbo" else normal_pipe
    assert meta["resolution_multiplier"] == pipe.vq_embedder.config.upsample_factor

    features = pipe.encode_image_tokens(meta["token_ids"], (meta["h"], meta["w"]))
    assert features.shape == (1,) + tuple(tensors["caption_features"].shape)
    assert _rel(features[0], tensors["caption_features"]) < 1e-5

    kwargs = _reference_kwargs(meta, tensors)
    recorder = _RecordTimes(pipe.transformer)
    try:
        latent = pipe(**kwargs, output_type="latent").images
    finally:
        recorder.remove()
    assert _rel(latent, tensors["final_latent"]) < 1e-5

    # One DiT forward per model evaluation (guidance batches both branches into it), at the recorded `t`.
    assert len(recorder.calls) == len(meta["model_evaluation_times_t"])
    for t_batch, t_ref in zip(recorder.calls, meta["model_evaluation_times_t"]):
        assert all(t == pytest.approx(t_ref, abs=1e-9) for t in t_batch)
    guided = meta["mode"] == "normal"
    assert all(len(t_batch) == (2 if guided else 1) for t_batch in recorder.calls)

    image = pipe(**kwargs, output_type="pt").images
    assert image.shape == (1,) + tuple(tensors["image"].shape)
    assert (image[0] - tensors["image"]).abs().max().item() < 1e-4


def test_defaults_are_the_original_samplers(normal_pipe, turbo_pipe):
    normal, turbo = normal_pipe.scheduler, turbo_pipe.scheduler
    assert isinstance(normal, LLaDAUniFlowMatchScheduler) and isinstance(turbo, LLaDAUniFlowMatchScheduler)
    assert normal.config.shift == 6.0 and not normal.config.stochastic_sampling
    assert turbo.config.shift == 1.0 and turbo.config.stochastic_sampling
    normal.set_timesteps(49)
    t = torch.linspace(0, 1, 50)
    assert torch.equal(normal.data_timesteps, (t / (t + 6 - 6 * t))[:-1])
    assert normal.sigmas[-1] == 0
    turbo.set_timesteps(8)
    assert torch.equal(turbo.data_timesteps, torch.linspace(0, 1, 9, dtype=torch.float64)[:-1].float())
    assert not normal_pipe.config.turbo and turbo_pipe.config.turbo


def test_released_config_quirks_are_fixed(normal_pipe, turbo_pipe, tiny_released_dir):
    with open(tiny_released_dir / "decoder" / "config.json", encoding="utf-8") as f:
        released = json.load(f)
    for pipe in (normal_pipe, turbo_pipe):
        assert isinstance(pipe.transformer, ZImageTransformer2DModel)
        width = pipe.vq_embedder.config.embedding_dim
        assert pipe.transformer.config.cap_feat_dim == width != released["cap_feat_dim"]
        assert list(pipe.transformer.config.axes_lens) == [32768, 1024, 1024]
        assert not any(k.startswith("semantic_embedder") for k in pipe.transformer.state_dict())
    sigvq = torch.load(tiny_released_dir / "image_tokenizer" / "sigvq_embedding.pt", weights_only=True)
    for key, value in sigvq.items():
        assert torch.equal(normal_pipe.vq_embedder.state_dict()[key], value)
    # The two released folders use different weight file names; both decoders hold their own weights.
    w_normal = normal_pipe.transformer.layers[0].attention.to_q.weight
    w_turbo = turbo_pipe.transformer.layers[0].attention.to_q.weight
    assert not torch.equal(w_normal, w_turbo)


def test_mismatched_caption_width_is_rejected(normal_pipe):
    with pytest.raises(ValueError, match="cap_feat_dim"):
        LLaDAUniDecoderPipeline(
            vq_embedder=SigVQEmbedding(num_embeddings=8, embedding_dim=20),
            transformer=normal_pipe.transformer,
            vae=normal_pipe.vae,
            scheduler=normal_pipe.scheduler,
        )


def test_sigvq_upsamples_nearest():
    torch.manual_seed(0)
    model = SigVQEmbedding(num_embeddings=10, embedding_dim=6, upsample_factor=2).eval()
    codes = torch.tensor([[[1, 2, 3], [4, 5, 6]]])
    with torch.no_grad():
        features = model(codes)
        per_code = model.prior_projector(model.prior_token_embedding(codes))
    assert features.shape == (1, 4 * 6, 6)
    grid = features.view(1, 4, 6, 6)
    for r in range(4):
        for c in range(6):
            torch.testing.assert_close(grid[0, r, c], per_code[0, r // 2, c // 2])
    assert set(model.state_dict()) == {
        "prior_token_embedding.weight",
        "prior_projector.net.0.proj.weight",
        "prior_projector.net.0.proj.bias",
        "prior_projector.net.2.weight",
        "prior_projector.net.2.bias",
    }


CODES = list(range(0, 64, 4))


def test_same_seed_same_image(turbo_pipe, normal_pipe):
    for pipe in (turbo_pipe, normal_pipe):
        kwargs = {"grid_size": (4, 4), "num_inference_steps": 2, "output_type": "np"}
        a = pipe(CODES, generator=torch.Generator().manual_seed(3), **kwargs).images
        b = pipe(CODES, generator=torch.Generator().manual_seed(3), **kwargs).images
        c = pipe(CODES, generator=torch.Generator().manual_seed(4), **kwargs).images
        assert np.array_equal(a, b)
        assert not np.array_equal(a, c)


def test_turbo_renoises_from_the_generator(turbo_pipe):
    # Same initial noise, different generators: only the per-step re-noising differs, so the images differ.
    latents = torch.randn(1, 16, 16, 16, generator=torch.Generator().manual_seed(0))
    kwargs = {"grid_size": (4, 4), "num_inference_steps": 3, "latents": latents, "output_type": "latent"}
    a = turbo_pipe(CODES, generator=torch.Generator().manual_seed(1), **kwargs).images
    b = turbo_pipe(CODES, generator=torch.Generator().manual_seed(2), **kwargs).images
    assert not torch.equal(a, b)


def test_output_types_agree(normal_pipe):
    def run(output_type):
        return normal_pipe(
            CODES,
            grid_size=(4, 4),
            num_inference_steps=2,
            generator=torch.Generator().manual_seed(5),
            output_type=output_type,
        ).images

    pt, np_images, pil, latent = run("pt"), run("np"), run("pil"), run("latent")
    assert pt.shape == (1, 3, 128, 128) and pt.dtype == torch.float32
    assert 0.0 <= pt.min() and pt.max() <= 1.0
    assert np_images.shape == (1, 128, 128, 3)
    np.testing.assert_allclose(np_images[0], pt[0].permute(1, 2, 0).numpy(), atol=1e-6)
    assert isinstance(pil, list) and len(pil) == 1 and isinstance(pil[0], PIL.Image.Image)
    assert pil[0].size == (128, 128) and pil[0].mode == "RGB"
    np.testing.assert_array_equal(np.asarray(pil[0]), (np_images[0] * 255).round().astype(np.uint8))
    assert latent.shape == (1, 16, 16, 16)
    vae = normal_pipe.vae
    decoded = vae.decode(latent / vae.config.scaling_factor + vae.config.shift_factor).sample
    torch.testing.assert_close((decoded / 2 + 0.5).clamp(0, 1), pt, atol=1e-6, rtol=0)
    image_tuple = normal_pipe(
        CODES, grid_size=(4, 4), num_inference_steps=2, generator=torch.Generator().manual_seed(5),
        output_type="pt", return_dict=False,
    )
    assert isinstance(image_tuple, tuple) and torch.equal(image_tuple[0], pt)


def test_batch_matches_single_decodes(turbo_pipe):
    other = list(range(63, -1, -4))
    kwargs = {"grid_size": (4, 4), "num_inference_steps": 2, "output_type": "latent"}
    batch = turbo_pipe(
        [CODES, other], generator=[torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)], **kwargs
    ).images
    first = turbo_pipe(CODES, generator=torch.Generator().manual_seed(1), **kwargs).images
    second = turbo_pipe(other, generator=torch.Generator().manual_seed(2), **kwargs).images
    # Batching changes the summation order of the matmuls only.
    torch.testing.assert_close(batch, torch.cat([first, second]), atol=1e-4, rtol=1e-4)


def test_grid_shapes_and_code_layouts(turbo_pipe):
    codes = torch.arange(6 * 2).reshape(1, 2, 6) % 64
    images = turbo_pipe(codes, num_inference_steps=1, generator=torch.Generator().manual_seed(0)).images
    assert images[0].size == (6 * 16 * 2, 2 * 16 * 2)  # PIL: (width, height)
    assert turbo_pipe.image_size_for_grid((2, 6)) == (64, 192)
    flat = turbo_pipe(
        codes.flatten().tolist(), grid_size=(2, 6), num_inference_steps=1, generator=torch.Generator().manual_seed(0),
        output_type="np",
    ).images
    np.testing.assert_array_equal((flat[0] * 255).round().astype(np.uint8), np.asarray(images[0]))
    several = turbo_pipe(
        codes, num_inference_steps=1, num_images_per_prompt=3, generator=torch.Generator().manual_seed(0),
        output_type="pt",
    ).images
    assert several.shape == (3, 3, 64, 192)


def test_caption_features_input_equals_codes_input(normal_pipe):
    features = normal_pipe.encode_image_tokens(CODES, (4, 4))
    kwargs = {"grid_size": (4, 4), "num_inference_steps": 2, "output_type": "latent"}
    a = normal_pipe(CODES, generator=torch.Generator().manual_seed(7), **kwargs).images
    b = normal_pipe(caption_features=features, generator=torch.Generator().manual_seed(7), **kwargs).images
    torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_callback_on_step_end(normal_pipe):
    seen = []

    def callback(pipe, step, timestep, callback_kwargs):
        seen.append((step, float(timestep), sorted(callback_kwargs)))
        assert callback_kwargs["caption_features"].shape == (1, 64, 32)
        return {"latents": torch.zeros_like(callback_kwargs["latents"])}

    latent = normal_pipe(
        CODES, grid_size=(4, 4), num_inference_steps=3, output_type="latent",
        generator=torch.Generator().manual_seed(0), callback_on_step_end=callback,
        callback_on_step_end_tensor_inputs=["latents", "caption_features", "negative_caption_features"],
    ).images
    assert [s[0] for s in seen] == [0, 1, 2]
    assert seen[0][2] == ["caption_features", "latents", "negative_caption_features"]
    assert torch.count_nonzero(latent) == 0  # the last step's latents came from the callback
    assert normal_pipe.num_timesteps == 3

    class Stop(PipelineCallback):
        tensor_inputs = ["latents"]

        def callback_fn(self, pipeline, step_index, timestep, callback_kwargs):
            pipeline._interrupt = True
            return callback_kwargs

    calls = _RecordTimes(normal_pipe.transformer)
    try:
        normal_pipe(
            CODES, grid_size=(4, 4), num_inference_steps=3, output_type="latent", callback_on_step_end=Stop()
        )
    finally:
        calls.remove()
    assert len(calls.calls) == 1


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"image_tokens": [0] * 15 + [64], "grid_size": (4, 4)}, ValueError, r"64 is outside the codebook.*\[0, 64\)"),
        ({"image_tokens": [-1] + [0] * 15, "grid_size": (4, 4)}, ValueError, r"-1 is outside the codebook"),
        ({"image_tokens": [0] * 15, "grid_size": (4, 4)}, ValueError, r"15 codes .* needs h \* w = 16"),
        ({"image_tokens": [], "grid_size": (0, 4)}, ValueError, "empty"),
        ({"image_tokens": [0] * 4, "grid_size": (0, 4)}, ValueError, r"positive.*\(0, 4\)"),
        ({"image_tokens": torch.zeros(1, 0, 4, dtype=torch.long)}, ValueError, r"positive.*\(0, 4\)"),
        ({"image_tokens": [0] * 16, "grid_size": (4.0, 4)}, TypeError, "pair"),
        ({"image_tokens": [0] * 16}, ValueError, "grid_size"),
        ({"image_tokens": torch.zeros(16), "grid_size": (4, 4)}, TypeError, "integer codes"),
        ({"image_tokens": [[0] * 16, [0] * 12], "grid_size": (4, 4)}, ValueError, "same length"),
        ({"image_tokens": "abc", "grid_size": (4, 4)}, TypeError, "image_tokens"),
        ({"image_tokens": [0] * 16, "grid_size": (4, 4), "output_type": "jpeg"}, ValueError, r"output_type.*'jpeg'"),
        (
            {"image_tokens": [0] * 16, "grid_size": (4, 4), "callback_on_step_end": lambda *a: {},
             "callback_on_step_end_tensor_inputs": ["latents", "noise_pred"]},
            ValueError, r"\['noise_pred'\].*offers",
        ),
        ({"image_tokens": [0] * 16, "grid_size": (4, 4), "num_inference_steps": 0}, ValueError, "num_inference_steps"),
        ({"image_tokens": [0] * 16, "grid_size": (4, 4), "latents": torch.zeros(1, 16, 8, 8)}, ValueError, "latents"),
        (
            {"image_tokens": [0] * 16, "grid_size": (4, 4), "num_inference_steps": 2,
             "step_noises": [torch.zeros(1, 16, 16, 16)]},
            ValueError, "deterministic",
        ),
        ({}, ValueError, "image_tokens"),
    ],
)
def test_bad_input_is_rejected(normal_pipe, kwargs, error, message):
    with pytest.raises(error, match=message):
        normal_pipe(**{"num_inference_steps": 1, **kwargs})


def test_bad_step_noises_are_rejected(turbo_pipe):
    with pytest.raises(ValueError, match="one per step"):
        turbo_pipe([0] * 16, grid_size=(4, 4), num_inference_steps=2, step_noises=[torch.zeros(1, 16, 16, 16)])
    with pytest.raises(ValueError, match="shape"):
        turbo_pipe([0] * 16, grid_size=(4, 4), num_inference_steps=1, step_noises=[torch.zeros(1, 16, 8, 8)])


@pytest.mark.parametrize("turbo", [False, True])
def test_save_pretrained_round_trip(turbo, normal_pipe, turbo_pipe, tmp_path):
    pipe = turbo_pipe if turbo else normal_pipe
    pipe.save_pretrained(tmp_path)
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert "model_index.json" in files
    assert not [f for f in files if f.endswith((".bin", ".pt", ".pth", ".ckpt"))]
    with open(tmp_path / "model_index.json", encoding="utf-8") as f:
        index = json.load(f)
    # Named by file, the diffusers form for code that ships in the folder (trust_remote_code).
    assert index["_class_name"] == ["pipeline_llada_uni_decoder", "LLaDAUniDecoderPipeline"]
    assert index["vq_embedder"] == ["modeling_sigvq", "SigVQEmbedding"]
    assert index["transformer"] == ["diffusers", "ZImageTransformer2DModel"]
    assert index["turbo"] is turbo

    loaded = LLaDAUniDecoderPipeline.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    assert loaded.config.turbo is turbo
    assert type(loaded.scheduler) is LLaDAUniFlowMatchScheduler
    public = lambda config: {k: v for k, v in config.items() if not k.startswith("_")}  # noqa: E731
    assert public(loaded.scheduler.config) == public(pipe.scheduler.config)

    kwargs = {"grid_size": (4, 4), "num_inference_steps": 2, "output_type": "np"}
    a = pipe(CODES, generator=torch.Generator().manual_seed(9), **kwargs).images
    b = loaded(CODES, generator=torch.Generator().manual_seed(9), **kwargs).images
    np.testing.assert_array_equal(a, b)


def test_no_disk_reads_during_a_call(turbo_pipe, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError(f"read from disk during a decode: {args[:1]}")

    monkeypatch.setattr(builtins, "open", forbidden)
    monkeypatch.setattr(torch, "load", forbidden)
    monkeypatch.setattr(safetensors.torch, "load_file", forbidden)
    images = turbo_pipe(CODES, grid_size=(4, 4), num_inference_steps=2, output_type="pil").images
    assert images[0].size == (128, 128)


@pytest.mark.parametrize("offload", ["model", "group_block", "group_leaf"])
def test_offloading_gives_the_same_image(offload, tiny_released_dir, turbo_pipe):
    # No accelerator here: the hooks move weights between "cpu" and "cpu", which still runs every hook and each
    # part's forward through them, in the order `model_cpu_offload_seq` gives.
    pipe = LLaDAUniDecoderPipeline.from_released(tiny_released_dir, turbo=True)
    pipe.set_progress_bar_config(disable=True)
    onloaded = []
    if offload == "model":
        pipe.enable_model_cpu_offload(device="cpu")
        for name in pipe.model_cpu_offload_seq.split("->"):
            hook = getattr(pipe, name)._hf_hook
            original = hook.pre_forward

            def pre_forward(module, *args, _name=name, _original=original, **kwargs):
                if not onloaded or onloaded[-1] != _name:
                    onloaded.append(_name)
                return _original(module, *args, **kwargs)

            hook.pre_forward = pre_forward
    else:
        kind = {"group_block": {"offload_type": "block_level", "num_blocks_per_group": 1},
                "group_leaf": {"offload_type": "leaf_level"}}[offload]
        pipe.enable_group_offload(onload_device=torch.device("cpu"), offload_device=torch.device("cpu"), **kind)
    kwargs = {"grid_size": (4, 4), "num_inference_steps": 3, "output_type": "np"}
    expected = turbo_pipe(CODES, generator=torch.Generator().manual_seed(4), **kwargs).images
    images = pipe(CODES, generator=torch.Generator().manual_seed(4), **kwargs).images
    np.testing.assert_array_equal(images, expected)
    if offload == "model":
        assert onloaded == ["vq_embedder", "transformer", "vae"]
        assert len(pipe._all_hooks) == 3


def test_stock_flow_match_scheduler_computes_the_same(normal_pipe, expected_dir):
    meta, tensors = _load_case(expected_dir, "decode_normal")
    stock = LLaDAUniDecoderPipeline(
        vq_embedder=normal_pipe.vq_embedder,
        transformer=normal_pipe.transformer,
        vae=normal_pipe.vae,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=6.0),
    )
    stock.set_progress_bar_config(disable=True)
    latent = stock(**_reference_kwargs(meta, tensors), output_type="latent").images
    # Same maths; only the float32 rounding of `t` (through sigma = 1 - t) differs.
    assert _rel(latent, tensors["final_latent"]) < 1e-3


def test_scheduler_noise_argument_matches_generator():
    scheduler = LLaDAUniFlowMatchScheduler(stochastic_sampling=True, time_grid_dtype="float64")
    sample = torch.randn(1, 4, 2, 2, generator=torch.Generator().manual_seed(0))
    model_output = torch.randn(1, 4, 2, 2, generator=torch.Generator().manual_seed(1))
    scheduler.set_timesteps(4)
    drawn = scheduler.step(model_output, scheduler.timesteps[0], sample, generator=torch.Generator().manual_seed(2))
    noise = torch.randn(1, 4, 2, 2, generator=torch.Generator().manual_seed(2))
    scheduler.set_timesteps(4)
    given = scheduler.step(model_output, scheduler.timesteps[0], sample, noise=noise)
    torch.testing.assert_close(drawn.prev_sample, given.prev_sample, atol=0, rtol=0)
    # t = 0 -> 0.25: sigma 1 -> 0.75; clean estimate x0 = sample - sigma * model_output, re-noised to 0.75.
    expected = 0.25 * (sample - model_output) + 0.75 * noise
    torch.testing.assert_close(given.prev_sample, expected)
    deterministic = LLaDAUniFlowMatchScheduler(shift=6.0)
    deterministic.set_timesteps(2)
    with pytest.raises(ValueError, match="deterministic"):
        deterministic.step(model_output, deterministic.timesteps[0], sample, noise=noise)


def test_lora_loads_into_the_dit(tiny_released_dir, tmp_path):
    from peft import LoraConfig, get_peft_model_state_dict

    pipe = LLaDAUniDecoderPipeline.from_released(tiny_released_dir, turbo=True)
    pipe.set_progress_bar_config(disable=True)
    kwargs = {"grid_size": (4, 4), "num_inference_steps": 2, "output_type": "latent"}
    base = pipe(CODES, generator=torch.Generator().manual_seed(0), **kwargs).images

    donor = LLaDAUniDecoderPipeline.from_released(tiny_released_dir, turbo=True)
    donor.transformer.add_adapter(
        LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"], init_lora_weights=False)
    )
    LLaDAUniDecoderPipeline.save_lora_weights(
        tmp_path, transformer_lora_layers=get_peft_model_state_dict(donor.transformer)
    )
    assert (tmp_path / "pytorch_lora_weights.safetensors").is_file()

    pipe.load_lora_weights(tmp_path, adapter_name="style")
    with_lora = pipe(CODES, generator=torch.Generator().manual_seed(0), **kwargs).images
    donor.set_progress_bar_config(disable=True)
    donor_out = donor(CODES, generator=torch.Generator().manual_seed(0), **kwargs).images
    assert not torch.allclose(with_lora, base)
    torch.testing.assert_close(with_lora, donor_out, atol=1e-5, rtol=1e-5)

    half = pipe(CODES, generator=torch.Generator().manual_seed(0), attention_kwargs={"scale": 0.0}, **kwargs).images
    torch.testing.assert_close(half, base, atol=1e-5, rtol=1e-5)
    pipe.unload_lora_weights()
    restored = pipe(CODES, generator=torch.Generator().manual_seed(0), **kwargs).images
    torch.testing.assert_close(restored, base, atol=0, rtol=0)


def test_convert_released_decoder_writes_a_loadable_folder(tiny_released_dir, tmp_path, normal_pipe):
    out = tmp_path / "converted" / "decoder"
    convert_released_decoder(tiny_released_dir, out, turbo=False)
    assert (out / "model_index.json").is_file()
    convert_released_decoder(tiny_released_dir, out, turbo=False)  # over an existing folder
    assert sorted(p.name for p in out.parent.iterdir()) == ["decoder"]
    loaded = LLaDAUniDecoderPipeline.from_pretrained(out)
    loaded.set_progress_bar_config(disable=True)
    kwargs = {"grid_size": (4, 4), "num_inference_steps": 2, "output_type": "np"}
    a = loaded(CODES, generator=torch.Generator().manual_seed(1), **kwargs).images
    b = normal_pipe(CODES, generator=torch.Generator().manual_seed(1), **kwargs).images
    np.testing.assert_array_equal(a, b)


def test_custom_sigmas_go_through_the_scheduler(turbo_pipe):
    recorder = _RecordTimes(turbo_pipe.transformer)
    try:
        turbo_pipe(CODES, grid_size=(4, 4), sigmas=[1.0, 0.25], output_type="latent",
                   generator=torch.Generator().manual_seed(0))
    finally:
        recorder.remove()
    assert [t for (t,) in recorder.calls] == [0.0, 0.75]  # t = 1 - sigma (no shift in the turbo scheduler)


def test_released_layout_errors_name_the_missing_file(tiny_released_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="sigvq_embedding.pt"):
        LLaDAUniDecoderPipeline.from_released(tmp_path)
    import shutil

    released = tmp_path / "released"
    shutil.copytree(tiny_released_dir / "image_tokenizer", released / "image_tokenizer")
    shutil.copytree(tiny_released_dir / "vae", released / "vae")
    (released / "decoder").mkdir()
    shutil.copy(tiny_released_dir / "decoder" / "config.json", released / "decoder" / "config.json")
    with pytest.raises(FileNotFoundError, match="decoder_model.safetensors"):
        LLaDAUniDecoderPipeline.from_released(released)
    # A weight file under the diffusers name is found as well.
    shutil.copy(
        tiny_released_dir / "decoder" / "decoder_model.safetensors",
        released / "decoder" / "diffusion_pytorch_model.safetensors",
    )
    pipe = LLaDAUniDecoderPipeline.from_released(released)
    assert pipe.transformer.config.cap_feat_dim == pipe.vq_embedder.config.embedding_dim


def test_released_layout_in_bfloat16(tiny_released_dir, normal_pipe):
    pipe = LLaDAUniDecoderPipeline.from_released(tiny_released_dir, torch_dtype=torch.bfloat16)
    pipe.set_progress_bar_config(disable=True)
    assert {pipe.transformer.dtype, pipe.vae.dtype, pipe.vq_embedder.dtype} == {torch.bfloat16}
    kwargs = {"grid_size": (4, 4), "num_inference_steps": 2, "output_type": "np"}
    low = pipe(CODES, generator=torch.Generator().manual_seed(0), **kwargs).images
    full = normal_pipe(CODES, generator=torch.Generator().manual_seed(0), **kwargs).images
    assert low.shape == full.shape and np.abs(low - full).max() < 0.25  # bfloat16 rounding, same picture
