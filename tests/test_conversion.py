"""Released layout -> converted layout: every part loads with `from_pretrained` and computes what the release does."""

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file
from transformers import AutoModel, AutoModelForCausalLM, AutoProcessor, AutoTokenizer

import transformers_llada_uni  # noqa: F401  (Auto registration)
from diffusers_llada_uni import LLaDAUniDecoderPipeline
from llada_uni_conversion import convert
from llada_uni_conversion.backbone import expected_backbone_shapes
from transformers_llada_uni import LLaDAUniConfig, LLaDAUniForConditionalGeneration
from transformers_llada_uni.modeling_llada_uni_image_tokenizer import LLaDAUniImageVQModel

from conftest import EXPECTED, IMAGES, REAL_FILES, TINY_RELEASED
from subprocess_utils import run_without_package


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    dst = tmp_path_factory.mktemp("conversion") / "converted"
    convert(TINY_RELEASED, dst, verify=True, progress=False, log=lambda message: None)
    return dst


def _block_causal(length, block_length):
    block = torch.arange(length) // block_length
    return (block[None, :] <= block[:, None])[None, None]


def test_layout(converted):
    files = {p.relative_to(converted).as_posix() for p in converted.rglob("*") if p.is_file()}
    for name in (
        "config.json",
        "generation_config.json",
        "model.safetensors.index.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "preprocessor_config.json",
        "processor_config.json",
        "configuration_llada_uni.py",
        "modeling_llada_uni.py",
        "image_tokenizer/config.json",
        "image_tokenizer/model.safetensors",
        "decoder/model_index.json",
        "decoder/transformer/diffusion_pytorch_model.safetensors",
        "decoder/vae/diffusion_pytorch_model.safetensors",
        "decoder/vq_embedder/diffusion_pytorch_model.safetensors",
        "decoder/scheduler/scheduler_config.json",
        "decoder-turbo/model_index.json",
        "decoder-turbo/transformer/diffusion_pytorch_model.safetensors",
    ):
        assert name in files, f"{name} missing from the converted folder"
    # No pickle anywhere: the released sigvq_embedding.pt is now safetensors.
    assert not [f for f in files if f.endswith((".pt", ".bin", ".pth", ".ckpt"))]
    # Loading options of the conversion run must not be baked into the tokenizer config.
    with open(converted / "tokenizer_config.json") as f:
        assert not {"local_files_only", "trust_remote_code", "cache_dir"} & set(json.load(f))
    # No temporary folder next to the result.
    assert [p.name for p in converted.parent.iterdir()] == ["converted"]


def test_config_takes_ids_from_the_tokenizer(converted):
    with open(converted / "config.json") as f:
        config = json.load(f)
    with open(TINY_RELEASED / "config.json") as f:
        released = json.load(f)
    tokenizer = AutoTokenizer.from_pretrained(TINY_RELEASED, trust_remote_code=False)
    assert config["model_type"] == "llada_uni"
    assert config["mask_token_id"] == tokenizer.mask_token_id
    assert config["eos_token_id"] == tokenizer.eos_token_id
    assert config["pad_token_id"] == tokenizer.pad_token_id
    assert config["image_token_offset"] == tokenizer.convert_tokens_to_ids("<IMAGE0>")
    assert config["image_codebook_size"] == released["vocab_size"] - released["image_token_offset"]
    assert config["auto_map"]["AutoModelForCausalLM"] == "modeling_llada_uni.LLaDAUniForConditionalGeneration"


def test_backbone_keeps_the_released_key_layout(converted):
    with open(converted / "model.safetensors.index.json") as f:
        converted_keys = set(json.load(f)["weight_map"])
    with open(TINY_RELEASED / "model.safetensors.index.json") as f:
        released_map = json.load(f)["weight_map"]
    assert converted_keys == set(released_map)
    for shard in sorted(set(released_map.values())):
        with safe_open(TINY_RELEASED / shard, "pt") as src, safe_open(converted / shard, "pt") as dst:
            for key in src.keys():
                assert torch.equal(src.get_tensor(key), dst.get_tensor(key)), key


def test_expected_shapes_cover_the_real_release():
    # The real config must predict every one of the 14,813 released keys, no more.
    with open(REAL_FILES / "config.json") as f:
        fields = {k: v for k, v in json.load(f).items()
                  if k not in ("auto_map", "architectures", "model_type", "transformers_version", "torch_dtype")}
    with open(REAL_FILES / "model.safetensors.index.json") as f:
        real_keys = set(json.load(f)["weight_map"])
    assert set(expected_backbone_shapes(LLaDAUniConfig(**fields))) == real_keys


@pytest.mark.parametrize("case", ["logits_full", "logits_block8"])
def test_forward_reproduces_reference(converted, case):
    tensors = load_file(EXPECTED / "forward.safetensors")
    input_ids = tensors["input_ids"]
    mask = None if case == "logits_full" else _block_causal(input_ids.shape[1], 8)
    results = {}
    for name, path in (("released", TINY_RELEASED), ("converted", converted)):
        model = AutoModelForCausalLM.from_pretrained(path, trust_remote_code=False)
        assert isinstance(model, LLaDAUniForConditionalGeneration)
        with torch.no_grad():
            results[name] = model(input_ids, attention_mask=mask).logits
    assert torch.equal(results["converted"], results["released"])
    rel = (results["converted"] - tensors[case]).abs().max() / tensors[case].abs().max()
    assert rel.item() < 1e-5


@pytest.mark.parametrize("name", ["landscape_150x100", "portrait_90x200", "square_64x64_rgba"])
@pytest.mark.parametrize("mode", ["understand", "edit"])
def test_image_tokens_reproduce_reference(converted, name, mode):
    with open(EXPECTED / f"image_tokens_{mode}_{name}.json") as f:
        expected = json.load(f)
    processor = AutoProcessor.from_pretrained(converted)
    image_tokenizer = AutoModel.from_pretrained(converted / "image_tokenizer")
    assert isinstance(image_tokenizer, LLaDAUniImageVQModel)
    released = LLaDAUniImageVQModel.from_pretrained(TINY_RELEASED / "image_tokenizer")
    inputs = processor.image_processor(str(IMAGES / f"{name}.png"), mode=mode, return_tensors="pt")
    codes = image_tokenizer.encode(inputs["pixel_values"], inputs["image_grid_thw"]).image_codes
    reference = released.encode(inputs["pixel_values"], inputs["image_grid_thw"]).image_codes
    assert inputs["image_grid_thw"].tolist() == [expected["grid_thw"]]
    assert codes.tolist() == reference.tolist() == expected["token_ids"]


def decode_case(name):
    """The recorded decode `name`: the decoder call's arguments, the recorded image, and whether it is turbo."""
    with open(EXPECTED / f"{name}.json") as f:
        meta = json.load(f)
    tensors = load_file(EXPECTED / f"{name}.safetensors")
    turbo = meta["mode"] == "turbo"
    steps = len(meta["model_evaluation_times_t"])
    kwargs = {
        "image_tokens": meta["token_ids"],
        "grid_size": (meta["h"], meta["w"]),
        "num_inference_steps": steps,
        "latents": tensors["initial_latent"][:, :, 0],
        "output_type": "pt",
    }
    if turbo:
        kwargs["step_noises"] = [tensors[f"step_noise_{i}"][:, :, 0] for i in range(steps)]
    return kwargs, tensors["image"], turbo


@pytest.mark.parametrize("case", ["decode_normal", "decode_turbo"])
def test_decoder_reproduces_reference(converted, case):
    kwargs, expected, turbo = decode_case(case)
    images = {}
    for name, pipe in (
        ("released", LLaDAUniDecoderPipeline.from_released(TINY_RELEASED, turbo=turbo)),
        ("converted", LLaDAUniDecoderPipeline.from_pretrained(converted / ("decoder-turbo" if turbo else "decoder"))),
    ):
        pipe.set_progress_bar_config(disable=True)
        images[name] = pipe(**kwargs).images
    for name, image in images.items():
        assert (image[0] - expected).abs().max().item() < 1e-4, name


def test_trust_remote_code_without_the_package(converted):
    result = run_without_package(
        f"""
        import torch
        from safetensors.torch import load_file
        from transformers import AutoModel, AutoModelForCausalLM, AutoProcessor
        tensors = load_file({str(EXPECTED / "forward.safetensors")!r})
        model = AutoModelForCausalLM.from_pretrained({str(converted)!r}, trust_remote_code=True)
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        with torch.no_grad():
            logits = model(tensors["input_ids"]).logits
        rel = (logits - tensors["logits_full"]).abs().max() / tensors["logits_full"].abs().max()
        assert rel.item() < 1e-5, rel
        image_tokenizer = AutoModel.from_pretrained({str(converted / "image_tokenizer")!r}, trust_remote_code=True)
        assert type(image_tokenizer).__name__ == "LLaDAUniImageVQModel"
        print("OK", type(model).__name__)
        """
    )
    assert "OK LLaDAUniForConditionalGeneration" in result.stdout


@pytest.fixture(scope="module")
def converted_model_and_processor(converted):
    model = AutoModelForCausalLM.from_pretrained(converted)
    processor = AutoProcessor.from_pretrained(converted)
    model.set_tokenizer(processor.tokenizer)
    return model, processor


def _case(name):
    with open(EXPECTED / f"{name}.json") as f:
        return json.load(f)


def test_generation_reproduces_reference(converted, converted_model_and_processor):
    model, _ = converted_model_and_processor
    case = _case("generate_text")
    # The converted config carries the mask/EOS ids: no tokenizer needed for plain generation.
    output = AutoModelForCausalLM.from_pretrained(converted).generate(
        torch.tensor([case["prompt_ids"]]), show_progress_bar=False, **case["kwargs"]
    )
    assert output[0].tolist() == case["output_ids"]


@pytest.mark.parametrize("name", ["t2i", "t2i_sprint_exact"])
def test_text_to_image_reproduces_reference(converted_model_and_processor, name):
    model, _ = converted_model_and_processor
    case = _case(name)
    result = model.generate_image(case["prompt"], show_progress_bar=False, **case["kwargs"])
    assert (result.h, result.w) == (case["result"]["h"], case["result"]["w"])
    assert result.token_ids.tolist() == case["result"]["token_ids"]


def test_understanding_reproduces_reference(converted_model_and_processor):
    model, _ = converted_model_and_processor
    case = _case("understand")
    text = model.understand_image(case["image_token_ids"], case["h"], case["w"], case["question"],
                                  show_progress_bar=False, **case["kwargs"])
    assert text == case["text"]


def test_editing_reproduces_reference(converted_model_and_processor):
    model, _ = converted_model_and_processor
    case = _case("edit")
    result = model.edit_image(case["image_token_ids"], case["h"], case["w"], case["instruction"],
                              show_progress_bar=False, **case["kwargs"])
    assert result.token_ids.tolist() == case["result"]["token_ids"]


def test_processor_encodes_the_understanding_image_as_recorded(converted, converted_model_and_processor):
    # Picture -> ids through the converted processor and image tokenizer: the ids the understanding case used.
    _, processor = converted_model_and_processor
    case = _case("understand")
    image_tokenizer = AutoModel.from_pretrained(converted / "image_tokenizer")
    encoded = processor.encode_images(str(IMAGES / "landscape_150x100.png"), image_tokenizer, mode="understand")
    assert (encoded["h"], encoded["w"]) == (case["h"], case["w"])
    assert encoded["image_token_ids"] == case["image_token_ids"]
