"""The SigLIP-VQ image tokenizer model: released-layout loading, recorded codes, batching, dtypes, round trips,
remote code, input validation."""

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModel

import transformers_llada_uni  # noqa: F401  (registers the Auto classes)
from transformers_llada_uni import (
    LLaDAUniImageProcessor,
    LLaDAUniImageVQConfig,
    LLaDAUniImageVQModel,
    LLaDAUniImageVQOutput,
    LLaDAUniImageVQPreTrainedModel,
)

from conftest import EXPECTED, IMAGES, REAL_FILES, TINY_RELEASED
from subprocess_utils import run_without_package


RELEASED_TOKENIZER = TINY_RELEASED / "image_tokenizer"
PICTURES = ["landscape_150x100", "portrait_90x200", "square_64x64_rgba"]


def _case(mode, name):
    return json.loads((EXPECTED / f"image_tokens_{mode}_{name}.json").read_text())


def _recorded_pixels(name):
    return load_file(EXPECTED / f"image_tokens_understand_{name}.safetensors")["pixel_values"]


@pytest.fixture(scope="module")
def tokenizer():
    return LLaDAUniImageVQModel.from_pretrained(RELEASED_TOKENIZER).eval()


@pytest.fixture(scope="module")
def processor():
    return LLaDAUniImageProcessor()


def test_config_reads_released_glm_image_config():
    config = LLaDAUniImageVQConfig.from_pretrained(RELEASED_TOKENIZER)
    released = json.loads((RELEASED_TOKENIZER / "config.json").read_text())
    assert config.model_type == "llada_uni_image_tokenizer"
    for key in ("depth", "hidden_size", "num_heads", "patch_size", "image_size", "intermediate_size"):
        assert getattr(config.vision_config, key) == released["vision_config"][key]
    for key in ("embed_dim", "num_embeddings", "latent_channels"):
        assert getattr(config.vq_config, key) == released["vq_config"][key]
    # GLM-Image's language-model settings are not part of the tokenizer
    assert not hasattr(config, "text_config")
    assert config.codebook_size == released["vq_config"]["num_embeddings"]


def test_config_reads_real_sized_config():
    config = LLaDAUniImageVQConfig.from_pretrained(REAL_FILES / "image_tokenizer")
    assert (config.vision_config.depth, config.vision_config.hidden_size) == (40, 1536)
    assert (config.vq_config.num_embeddings, config.vq_config.embed_dim) == (16384, 2048)


def test_config_round_trip_and_auto(tmp_path):
    config = LLaDAUniImageVQConfig.from_pretrained(RELEASED_TOKENIZER)
    config.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert "transformers_weights" not in saved  # only the released folder needs the file-name redirect
    reloaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(reloaded, LLaDAUniImageVQConfig)
    assert reloaded.vision_config.to_dict() == config.vision_config.to_dict()
    assert reloaded.vq_config.to_dict() == config.vq_config.to_dict()
    assert reloaded.quantize_chunk_size == config.quantize_chunk_size


def test_config_rejects_inconsistent_widths():
    with pytest.raises(ValueError, match="latent_channels"):
        LLaDAUniImageVQConfig(
            vision_config={"hidden_size": 32, "num_heads": 2}, vq_config={"latent_channels": 48}
        )
    with pytest.raises(ValueError, match="quantize_chunk_size"):
        LLaDAUniImageVQConfig(quantize_chunk_size=0)


def test_loads_released_folder_ignoring_other_keys():
    model, info = LLaDAUniImageVQModel.from_pretrained(RELEASED_TOKENIZER, output_loading_info=True)
    assert not info["missing_keys"]
    assert not info["unexpected_keys"]  # the unrelated GLM-Image key is ignored on purpose, silently
    assert not info["mismatched_keys"]
    state = load_file(RELEASED_TOKENIZER / "image_tokenizer.safetensors")
    ours = model.state_dict()
    for key, value in state.items():
        if key.startswith("model.visual.") or key.startswith("model.vqmodel."):
            assert torch.equal(ours[key[len("model."):]], value), key


@pytest.mark.parametrize("name", PICTURES)
def test_recorded_pixels_give_recorded_codes(tokenizer, name):
    case = _case("understand", name)
    out = tokenizer.encode(_recorded_pixels(name), torch.tensor([case["grid_thw"]]))
    assert out.image_codes.tolist() == case["token_ids"]
    assert out.image_grid_thw.tolist() == [case["grid_thw"]]
    assert out.last_hidden_state is None


@pytest.mark.parametrize("mode", ["understand", "edit"])
@pytest.mark.parametrize("name", PICTURES)
def test_pictures_give_recorded_codes(tokenizer, processor, mode, name):
    case = _case(mode, name)
    inputs = processor(IMAGES / f"{name}.png", mode=mode, return_tensors="pt")
    out = tokenizer.encode(inputs["pixel_values"], inputs["image_grid_thw"])
    assert out.image_codes.tolist() == case["token_ids"]


def test_batch_of_mixed_sizes_equals_single_calls(tokenizer, processor):
    paths = [IMAGES / f"{name}.png" for name in PICTURES]
    batch = processor(paths, mode="understand", return_tensors="pt")
    out = tokenizer.encode(batch["pixel_values"], batch["image_grid_thw"])
    grids = out.codes_per_image()
    for name, grid in zip(PICTURES, grids):
        case = _case("understand", name)
        assert list(grid.shape) == case["grid_thw"][1:]
        assert grid.flatten().tolist() == case["token_ids"]


def test_forward_returns_features(tokenizer):
    case = _case("understand", "square_64x64_rgba")
    out = tokenizer(_recorded_pixels("square_64x64_rgba"), torch.tensor([case["grid_thw"]]))
    assert out.last_hidden_state.shape == (64, tokenizer.config.vision_config.hidden_size)
    assert out.image_codes.tolist() == case["token_ids"]


def test_bfloat16_runs_and_mostly_agrees(processor):
    model = LLaDAUniImageVQModel.from_pretrained(RELEASED_TOKENIZER, dtype=torch.bfloat16)
    assert model.visual.patch_embed.proj.weight.dtype == torch.bfloat16
    case = _case("understand", "landscape_150x100")
    inputs = processor(IMAGES / "landscape_150x100.png", return_tensors="pt")
    codes = model.encode(inputs["pixel_values"], inputs["image_grid_thw"]).image_codes
    assert codes.dtype == torch.long and codes.shape == (len(case["token_ids"]),)
    agreement = (codes == torch.tensor(case["token_ids"])).float().mean().item()
    assert agreement > 0.9  # random tiny weights: a few near-ties may flip in bfloat16


def test_device_map_with_disk_offload(tmp_path):
    # No GPU here: a map that offloads one ViT block to disk exercises the same dispatch hooks as a multi-GPU map.
    device_map = {
        "visual.embeddings": "cpu", "visual.patch_embed": "cpu", "visual.blocks.0": "cpu",
        "visual.blocks.1": "disk", "vqmodel": "cpu",
    }
    model = LLaDAUniImageVQModel.from_pretrained(RELEASED_TOKENIZER, device_map=device_map, offload_folder=tmp_path)
    assert model.hf_device_map["visual.blocks.1"] == "disk"
    case = _case("understand", "square_64x64_rgba")
    codes = model.encode(_recorded_pixels("square_64x64_rgba"), torch.tensor([case["grid_thw"]])).image_codes
    assert codes.tolist() == case["token_ids"]


@pytest.mark.parametrize(
    "old, new",
    [
        ("LLaDAUniImageTokenizerConfig", LLaDAUniImageVQConfig),
        ("LLaDAUniImageTokenizerModel", LLaDAUniImageVQModel),
        ("LLaDAUniImageTokenizerPreTrainedModel", LLaDAUniImageVQPreTrainedModel),
        ("LLaDAUniImageTokenizerOutput", LLaDAUniImageVQOutput),
    ],
)
def test_earlier_names_still_work_with_a_deprecation_warning(old, new):
    # One name per class: the `LLaDAUniImageVQ*` names are the API, the earlier ones warn and give the same class.
    with pytest.warns(FutureWarning, match=f"`{old}` is deprecated.*`{new.__name__}`"):
        exec(f"from transformers_llada_uni import {old} as imported", namespace := {})
    assert namespace["imported"] is new
    assert old not in transformers_llada_uni.__all__
    with pytest.raises(AttributeError):
        transformers_llada_uni.LLaDAUniImageTokenizerProcessor


def test_no_split_modules():
    assert set(LLaDAUniImageVQModel._no_split_modules) >= {"GlmImageVisionBlock"}


def test_save_load_round_trip_and_automodel(tokenizer, tmp_path):
    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoModel.from_pretrained(tmp_path)
    assert isinstance(reloaded, LLaDAUniImageVQModel)
    for key, value in tokenizer.state_dict().items():
        assert torch.equal(reloaded.state_dict()[key], value), key
    case = _case("understand", "portrait_90x200")
    codes = reloaded.encode(_recorded_pixels("portrait_90x200"), torch.tensor([case["grid_thw"]])).image_codes
    assert codes.tolist() == case["token_ids"]


def test_remote_code_without_the_package(tokenizer, tmp_path):
    tokenizer.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["auto_map"]["AutoModel"].endswith("LLaDAUniImageVQModel")
    assert (tmp_path / "modeling_llada_uni_image_tokenizer.py").is_file()
    assert (tmp_path / "configuration_llada_uni_image_tokenizer.py").is_file()
    case = _case("understand", "landscape_150x100")
    pixels = EXPECTED / "image_tokens_understand_landscape_150x100.safetensors"
    result = run_without_package(
        f"""
        import json, torch
        from safetensors.torch import load_file
        from transformers import AutoModel
        model = AutoModel.from_pretrained({str(tmp_path)!r}, trust_remote_code=True)
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        pixels = load_file({str(pixels)!r})["pixel_values"]
        codes = model.encode(pixels, torch.tensor([{case["grid_thw"]!r}])).image_codes
        print(json.dumps(codes.tolist()))
        """
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) == case["token_ids"]


def test_bad_inputs(tokenizer):
    case = _case("understand", "square_64x64_rgba")
    pixels = _recorded_pixels("square_64x64_rgba")
    grid = torch.tensor([case["grid_thw"]])
    with pytest.raises(ValueError, match="total_patches, 768"):
        tokenizer.encode(pixels[:, :700], grid)
    with pytest.raises(ValueError, match="total_patches, 768"):
        tokenizer.encode(pixels.view(8, 8, 768), grid)
    with pytest.raises(ValueError, match="describes 72 patches but `pixel_values` holds 64"):
        tokenizer.encode(pixels, torch.tensor([[1, 8, 9]]))
    with pytest.raises(ValueError, match=r"\(num_images, 3\)"):
        tokenizer.encode(pixels, torch.tensor([8, 8]))
    with pytest.raises(ValueError, match=r"\(1, rows, columns\)"):
        tokenizer.encode(pixels, torch.tensor([[2, 4, 8]]))
    with pytest.raises(TypeError, match="integer tensor"):
        tokenizer.encode(pixels, grid.float())
    with pytest.raises(TypeError, match="torch.Tensor"):
        tokenizer.encode(pixels.numpy(), grid)
    with pytest.raises(TypeError, match="floating point"):
        tokenizer.encode(pixels.long(), grid)
