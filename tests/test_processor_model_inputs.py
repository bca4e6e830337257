"""The processor's output goes straight into the model, as with every multimodal model of transformers: pictures and
text -> `processor(...)` / `processor.apply_chat_template(...)` -> `model.generate(**inputs)` / `model(**inputs)`, on
the tiny checkpoint converted as a user converts the release."""

import json

import PIL.Image
import pytest
import torch
from transformers import AutoModel, AutoModelForCausalLM, AutoProcessor

import transformers_llada_uni  # noqa: F401  (registers the Auto classes)
from llada_uni_cli.convert import convert
from transformers_llada_uni.processing_llada_uni import CHAT_TEMPLATE

from conftest import EXPECTED, IMAGES, TINY_RELEASED


pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    converted = tmp_path_factory.mktemp("model-inputs") / "converted"
    convert(TINY_RELEASED, converted, verify=False, progress=False, log=lambda message: None)
    return converted


@pytest.fixture(scope="module")
def processor(checkpoint):
    return AutoProcessor.from_pretrained(checkpoint)


@pytest.fixture(scope="module")
def model(checkpoint):
    return AutoModelForCausalLM.from_pretrained(checkpoint).eval()


@pytest.fixture(scope="module")
def understand_case():
    return json.loads((EXPECTED / "understand.json").read_text())


def _settings(case):
    return {**case["kwargs"], "show_progress_bar": False}


def test_converted_folder_ships_the_chat_template(checkpoint, processor):
    assert (checkpoint / "chat_template.jinja").read_text() == CHAT_TEMPLATE
    assert processor.chat_template == processor.tokenizer.chat_template == CHAT_TEMPLATE


def test_processor_output_generates_the_recorded_understanding(processor, model, understand_case):
    # The original's prompt (pictures before the question, no chat template): the recorded ids come out.
    picture = PIL.Image.open(IMAGES / "landscape_150x100.png")
    inputs = processor(images=picture, text=understand_case["question"], return_tensors="pt")
    output = model.generate(**inputs, **_settings(understand_case))
    assert output[0].tolist() == understand_case["output_ids"]


def test_chat_template_inputs_generate_what_understand_image_does(checkpoint, processor, model, understand_case):
    picture = PIL.Image.open(IMAGES / "landscape_150x100.png")
    messages = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": understand_case["question"]}]},
    ]
    inputs = processor.apply_chat_template(
        messages, images=picture, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
    )
    output = model.generate(**inputs, **_settings(understand_case))

    image_tokenizer = AutoModel.from_pretrained(checkpoint / "image_tokenizer").eval()
    image = processor.encode_images(picture, image_tokenizer)
    reference = model.understand_image(
        **image, question=understand_case["question"], tokenizer=processor.tokenizer, use_chat_template=True,
        return_dict=True, **_settings(understand_case),
    )
    assert output[0].tolist() == reference.sequences[0].tolist()
    answer = processor.batch_decode(output[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)[0]
    assert reference.text.endswith(answer)


def test_forward_takes_the_processor_output(checkpoint, processor, model, understand_case):
    picture = IMAGES / "landscape_150x100.png"
    inputs = processor(images=picture, text=understand_case["question"], return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).logits
        image_tokenizer = AutoModel.from_pretrained(checkpoint / "image_tokenizer").eval()
        image = processor.encode_images(picture, image_tokenizer)
        ids = processor.build_understanding_prompt(image, understand_case["question"], return_tensors="pt")
        expected = model(input_ids=ids["input_ids"], attention_mask=ids["attention_mask"]).logits
    torch.testing.assert_close(logits, expected, rtol=0, atol=0)


def test_a_batch_generates_what_each_prompt_does_alone(processor, model, understand_case):
    pictures = [IMAGES / "landscape_150x100.png", IMAGES / "portrait_90x200.png"]
    questions = [understand_case["question"], "What colour dominates?"]
    batch = processor(images=pictures, text=questions, padding=True, return_tensors="pt")
    together = model.generate(**batch, **_settings(understand_case))
    width = batch["input_ids"].shape[1]
    for row, (picture, question) in enumerate(zip(pictures, questions)):
        alone = model.generate(
            **processor(images=picture, text=question, return_tensors="pt"), **_settings(understand_case)
        )[0]
        # `generate` returns each prompt left-padded to the longest, then its answer.
        start = width - int(batch["attention_mask"][row].sum())
        assert together[row, start : start + len(alone)].tolist() == alone.tolist()


def test_inputs_are_never_dropped(processor, model, understand_case):
    inputs = processor(images=IMAGES / "landscape_150x100.png", text=understand_case["question"], return_tensors="pt")
    without_pixels = {k: v for k, v in inputs.items() if k not in ("pixel_values", "image_grid_thw")}
    with pytest.raises(ValueError, match="no `pixel_values` were given"):
        model(**without_pixels)
    with pytest.raises(ValueError, match="no `pixel_values` were given"):
        model.generate(**without_pixels, **_settings(understand_case))
    with pytest.raises(ValueError, match="mm_token_type_ids"):
        model(**{k: v for k, v in inputs.items() if k != "mm_token_type_ids"})
    with pytest.raises(TypeError, match="Unexpected model input"):
        model(**inputs, image_sizes=torch.tensor([[128, 192]]))
    with pytest.raises(TypeError, match="Unexpected generation argument"):
        model.generate(**inputs, image_sizes=torch.tensor([[128, 192]]), **_settings(understand_case))


def test_image_tokenizer_can_be_attached(tmp_path, checkpoint, processor, model, understand_case):
    # A language model saved without its image tokenizer is told how to attach one.
    model.save_pretrained(tmp_path)
    alone = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    inputs = processor(images=IMAGES / "landscape_150x100.png", text=understand_case["question"], return_tensors="pt")
    with pytest.raises(ValueError, match="set_image_tokenizer"):
        alone.generate(**inputs, **_settings(understand_case))
    alone.set_image_tokenizer(AutoModel.from_pretrained(checkpoint / "image_tokenizer").eval())
    assert alone.generate(**inputs, **_settings(understand_case))[0].tolist() == understand_case["output_ids"]
    # It is not one of the model's modules: not saved with the language model's weights.
    assert not any(name.startswith("_image_tokenizer") for name, _ in alone.named_parameters())
