"""The language model the way transformers and PEFT users already use models: PEFT's causal-LM wrapper, the
`text-generation` and `image-text-to-text` pipelines, processor outputs with pictures, remote code with `subfolder=`.
Each test is a user's snippet on a converted checkpoint."""

import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, AutoProcessor, pipeline

import transformers_llada_uni  # noqa: F401  (registers the Auto classes)
from llada_uni_cli.convert import convert

from conftest import IMAGES, TINY_RELEASED
from subprocess_utils import run_without_package


pytestmark = pytest.mark.usefixtures("single_thread")

FAST = {"block_length": 8, "steps": 4, "show_progress_bar": False}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A converted checkpoint (language model, processor, image tokenizer, code files), as `llada-uni convert` writes
    it."""
    folder = tmp_path_factory.mktemp("integration") / "converted"
    convert(TINY_RELEASED, folder, verify=False, progress=False, log=lambda message: None)
    return folder


@pytest.fixture(scope="module")
def picture():
    return Image.open(IMAGES / "landscape_150x100.png")


def _perturb_lora(model):
    # LoRA starts as a no-op (B = 0): give it weights so that the adapter visibly changes the output.
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)


def test_peft_causal_lm_path(checkpoint, tmp_path):
    from peft import AutoPeftModelForCausalLM, LoraConfig, PeftModelForCausalLM, get_peft_model

    processor = AutoProcessor.from_pretrained(checkpoint)
    prompt = processor.tokenizer(["Write a haiku about the sea"], return_tensors="pt")
    base = AutoModelForCausalLM.from_pretrained(checkpoint)
    plain = base.generate(**prompt, max_new_tokens=16, **FAST)

    model = get_peft_model(base, LoraConfig(task_type="CAUSAL_LM", r=4, target_modules=["query_key_value", "dense"]))
    assert isinstance(model, PeftModelForCausalLM)
    _perturb_lora(model)
    adapted = model.generate(**prompt, max_new_tokens=16, **FAST)
    assert not torch.equal(adapted, plain)  # the adapter takes part in generation
    with model.disable_adapter():
        assert torch.equal(model.generate(**prompt, max_new_tokens=16, **FAST), plain)
    image = model.generate_image("a red square", tokenizer=processor.tokenizer, image_h=256, image_w=256, steps=2,
                                 show_progress_bar=False)
    assert image.token_ids.shape == (64,)

    model.save_pretrained(tmp_path / "adapter")
    reloaded = AutoPeftModelForCausalLM.from_pretrained(tmp_path / "adapter")
    assert isinstance(reloaded, PeftModelForCausalLM)
    assert torch.equal(reloaded.generate(**prompt, max_new_tokens=16, **FAST), adapted)
    again = reloaded.generate_image("a red square", tokenizer=processor.tokenizer, image_h=256, image_w=256, steps=2,
                                    show_progress_bar=False)
    assert torch.equal(again.token_ids, image.token_ids)


def test_text_generation_pipeline(checkpoint, monkeypatch):
    prompts = []  # transformers asks on stdin before running code it does not know; nothing here may need that
    monkeypatch.setattr("builtins.input", lambda *args: prompts.append(args) or "n")
    generator = pipeline("text-generation", model=str(checkpoint))
    assert not prompts
    model = AutoModelForCausalLM.from_pretrained(checkpoint)
    prompt = "Write a haiku about the sea"
    (result,) = generator(prompt, max_new_tokens=16, do_sample=False, **FAST)  # the pipeline samples by default
    ids = generator.tokenizer(prompt, return_tensors="pt")
    expected = generator.tokenizer.decode(model.generate(**ids, max_new_tokens=16, **FAST)[0],
                                          skip_special_tokens=True)
    assert result["generated_text"] == expected


def _inputs_with_pictures(checkpoint, processor, pictures, question):
    """Model inputs as the processor gives them for pictures + text: each picture's image block in `input_ids` with a
    placeholder per image code (`mm_token_type_ids` 1 there), and the pixels. Also the same prompt with the image ids
    written in (what the model must end up reading)."""
    from transformers_llada_uni.prompting_llada_uni import build_understanding_prompt, encode_text

    pixels = processor.image_processor(pictures, return_tensors="pt")
    image_tokenizer = transformers_llada_uni.LLaDAUniImageVQModel.from_pretrained(checkpoint / "image_tokenizer")
    codes = image_tokenizer.encode(pixels["pixel_values"], pixels["image_grid_thw"]).codes_per_image()
    offset = processor.special_token_ids.image_token_offset
    grids = [grid.flatten() + offset for grid in codes]
    prompt = build_understanding_prompt(processor.tokenizer, [g.tolist() for g in grids],
                                        [int(g.shape[0]) for g in codes], [int(g.shape[1]) for g in codes], question)
    ids = torch.tensor([prompt])
    is_code = (ids >= offset) & (ids < offset + processor.special_token_ids.image_codebook_size)
    placeholder = encode_text(processor.tokenizer, "<padding>")[0]
    inputs = {
        "input_ids": ids.masked_fill(is_code, placeholder),
        "attention_mask": torch.ones_like(ids),
        "mm_token_type_ids": is_code.long(),
        "pixel_values": pixels["pixel_values"],
        "image_grid_thw": pixels["image_grid_thw"],
    }
    return inputs, ids


def test_forward_and_generate_take_pictures(checkpoint, picture):
    processor = AutoProcessor.from_pretrained(checkpoint)
    model = AutoModelForImageTextToText.from_pretrained(checkpoint)  # its image tokenizer is found in image_tokenizer/
    inputs, ids_with_image = _inputs_with_pictures(checkpoint, processor, [picture], "What is in the picture?")
    with torch.no_grad():
        expected = model(ids_with_image, attention_mask=inputs["attention_mask"]).logits
        torch.testing.assert_close(model(**inputs).logits, expected, rtol=0, atol=0)
    assert torch.equal(model.generate(**inputs, max_new_tokens=16, **FAST),
                       model.generate(ids_with_image, max_new_tokens=16, **FAST))
    # inputs that do not belong together, or that the model does not know, raise
    with pytest.raises(ValueError, match="image-code positions"):
        model(**{**inputs, "mm_token_type_ids": torch.zeros_like(inputs["mm_token_type_ids"]).index_fill(1, torch.tensor([0]), 1)})
    with pytest.raises(ValueError, match="pixel_values"):
        model(inputs["input_ids"], mm_token_type_ids=inputs["mm_token_type_ids"])
    with pytest.raises(TypeError, match="image_sizes"):
        model(inputs["input_ids"], image_sizes=torch.tensor([[100, 150]]))


def test_remote_code_with_subfolder_without_the_package(checkpoint, picture):
    processor = AutoProcessor.from_pretrained(checkpoint)
    inputs, ids_with_image = _inputs_with_pictures(checkpoint, processor, [picture], "What is in the picture?")
    model = AutoModelForCausalLM.from_pretrained(checkpoint)
    with torch.no_grad():
        expected = model(ids_with_image, attention_mask=inputs["attention_mask"]).logits
    save_file({**inputs, "expected": expected}, checkpoint.parent / "io.safetensors")
    result = run_without_package(
        f"""
        import torch
        from safetensors.torch import load_file
        from transformers import AutoModel, AutoModelForCausalLM
        root = {str(checkpoint)!r}
        image_tokenizer = AutoModel.from_pretrained(root, subfolder="image_tokenizer", trust_remote_code=True)
        assert type(image_tokenizer).__name__ == "LLaDAUniImageVQModel", type(image_tokenizer)
        assert type(image_tokenizer).__module__.startswith("transformers_modules")
        model = AutoModelForCausalLM.from_pretrained(root, trust_remote_code=True)
        io = load_file({str(checkpoint.parent / "io.safetensors")!r})
        expected = io.pop("expected")
        with torch.no_grad():
            logits = model(**io).logits  # loads its image tokenizer through the same remote code
        # (this process may use more threads than the test's: float32 sums in another order)
        torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5 * expected.abs().max().item())
        print("SUBFOLDER-OK")
        """
    )
    assert "SUBFOLDER-OK" in result.stdout

