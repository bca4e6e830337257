"""Converted and saved folders as the libraries' users meet them: decoder folders carry their pipeline and component
code the diffusers way (loadable with `DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)` with or
without our packages), the end-to-end folder has a top-level `model_index.json`, and every folder has a model card
with the source's license and citation."""

import json
import shutil

import pytest
import torch
from diffusers import DiffusionPipeline
from huggingface_hub import ModelCard

from diffusers_llada_uni import LLaDAUniDecoderPipeline, LLaDAUniUnderstandingPipeline
from llada_uni_conversion import convert

from conftest import TINY_RELEASED
from subprocess_utils import run_without_package
from test_conversion import decode_case


CITATION = """@misc{llada2uni,
  title = {A citation the source card gives},
  year = {2026}
}"""
SOURCE_CARD = f"""---
license: apache-2.0
---
# The source

Some text.

## Citation

```bibtex
{CITATION}
```
"""


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    root = tmp_path_factory.mktemp("folders")
    src = root / "released"
    shutil.copytree(TINY_RELEASED, src)
    (src / "README.md").write_text(SOURCE_CARD)
    (src / "LICENSE").write_text("the license text")
    return convert(src, root / "converted", verify=False, progress=False, log=lambda message: None)


def _decode_case(name):
    kwargs, image, _ = decode_case(name)
    return kwargs, image


def test_decoder_folders_carry_their_code(converted):
    for folder in ("decoder", "decoder-turbo"):
        index = json.loads((converted / folder / "model_index.json").read_text())
        assert index["_class_name"] == ["pipeline_llada_uni_decoder", "LLaDAUniDecoderPipeline"]
        assert index["vq_embedder"] == ["modeling_sigvq", "SigVQEmbedding"]
        assert index["scheduler"] == ["scheduling_llada_uni", "LLaDAUniFlowMatchScheduler"]
        assert "_name_or_path" not in index
        for code in ("pipeline_llada_uni_decoder.py", "modeling_sigvq.py", "scheduling_llada_uni.py",
                     "vq_embedder/modeling_sigvq.py", "scheduler/scheduling_llada_uni.py"):
            assert (converted / folder / code).is_file(), f"{folder}/{code}"
        # Shipped code imports nothing of our packages by statement (diffusers would report them as missing).
        for code in (converted / folder).glob("*.py"):
            assert "import transformers_llada_uni" not in code.read_text()
            assert "from transformers_llada_uni" not in code.read_text()


def test_decoder_folders_load_with_diffusers_without_the_package(converted, tmp_path):
    """The user with only diffusers: `DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)`, and the
    recorded decodes come out."""
    cases = {"decoder": _decode_case("decode_normal"), "decoder-turbo": _decode_case("decode_turbo")}
    torch.save({folder: kwargs for folder, (kwargs, _) in cases.items()}, tmp_path / "kwargs.pt")
    result = run_without_package(
        f"""
        import torch
        from diffusers import DiffusionPipeline
        for folder, kwargs in torch.load({str(tmp_path / "kwargs.pt")!r}, weights_only=True).items():
            pipe = DiffusionPipeline.from_pretrained({str(converted)!r} + "/" + folder, trust_remote_code=True)
            assert type(pipe).__name__ == "LLaDAUniDecoderPipeline", type(pipe)
            assert type(pipe).__module__.startswith("diffusers_modules"), type(pipe).__module__
            pipe.set_progress_bar_config(disable=True)
            torch.save(pipe(**kwargs).images[0], {str(tmp_path)!r} + "/" + folder + ".pt")
        print("OK")
        """,
        timeout=600,
    )
    assert "OK" in result.stdout
    for folder, (_, expected) in cases.items():
        image = torch.load(tmp_path / f"{folder}.pt", weights_only=True)
        assert (image - expected).abs().max().item() < 1e-4, folder


def test_decoder_folders_load_with_diffusers_and_the_package(converted):
    kwargs, expected = _decode_case("decode_turbo")
    folder = converted / "decoder-turbo"
    for pipe in (DiffusionPipeline.from_pretrained(folder, trust_remote_code=True),
                 LLaDAUniDecoderPipeline.from_pretrained(folder)):
        pipe.set_progress_bar_config(disable=True)
        assert type(pipe).__name__ == "LLaDAUniDecoderPipeline"
        assert (pipe(**kwargs).images[0] - expected).abs().max().item() < 1e-4
    # Through our class the components are our package's own classes, not a second copy from the folder.
    ours = LLaDAUniDecoderPipeline.from_pretrained(folder)
    assert type(ours).__module__ == "diffusers_llada_uni.pipeline_llada_uni_decoder"
    assert type(ours.scheduler).__module__ == "diffusers_llada_uni.scheduling_llada_uni"
    # diffusers' own rule for code in a folder: asked for without `trust_remote_code`, it says so.
    with pytest.raises(ValueError, match="trust_remote_code=True"):
        DiffusionPipeline.from_pretrained(folder)


def test_the_end_to_end_folder_has_a_model_index(converted):
    index = json.loads((converted / "model_index.json").read_text())
    assert index["_class_name"] == "LLaDAUniTextToImagePipeline"
    assert index["model"][1] == "LLaDAUniForConditionalGeneration"
    assert index["processor"][1] == "LLaDAUniProcessor"
    assert index["image_tokenizer"][1] == "LLaDAUniImageVQModel"
    assert index["decoder"][1] == index["turbo_decoder"][1] == "LLaDAUniDecoderPipeline"


def _card(path):
    card = ModelCard.load(path / "README.md")
    return card.data.to_dict(), card.text


@pytest.mark.parametrize("folder", ["", "decoder", "decoder-turbo"])
def test_converted_folders_have_a_model_card(converted, folder):
    data, text = _card(converted / folder)
    assert data["license"] == "apache-2.0"
    assert CITATION in text
    assert "trust_remote_code=True" in text  # how to load it without the package
    assert "diffusers_llada_uni import" in text  # and with it
    if folder:
        assert data["library_name"] == "diffusers"
        assert ("8-step" in text) == (folder == "decoder-turbo")
    else:
        assert data["library_name"] == "transformers"
        assert (converted / "LICENSE").read_text() == "the license text"


def test_saved_pipelines_carry_the_card_forward(converted, tmp_path):
    decoder = LLaDAUniDecoderPipeline.from_pretrained(converted / "decoder-turbo")
    decoder.save_pretrained(tmp_path / "decoder")
    data, text = _card(tmp_path / "decoder")
    assert data["license"] == "apache-2.0" and CITATION in text

    reader = LLaDAUniUnderstandingPipeline.from_pretrained(converted, load_decoders=("turbo",))
    reader.save_pretrained(tmp_path / "end-to-end", push_to_hub=False)
    data, text = _card(tmp_path / "end-to-end")
    assert data["license"] == "apache-2.0" and CITATION in text
    index = json.loads((tmp_path / "end-to-end" / "model_index.json").read_text())
    assert index["_class_name"] == "LLaDAUniUnderstandingPipeline"
    assert index["decoder"] == [None, None] and index["turbo_decoder"][1] == "LLaDAUniDecoderPipeline"
    assert (tmp_path / "end-to-end" / "decoder-turbo" / "README.md").is_file()
    again = LLaDAUniUnderstandingPipeline.from_pretrained(tmp_path / "end-to-end", load_decoders=("turbo",))
    assert again.turbo_decoder is not None


def test_a_card_without_license_or_citation_in_the_source_says_so(tmp_path):
    LLaDAUniDecoderPipeline.from_released(TINY_RELEASED).save_pretrained(tmp_path / "decoder")
    data, text = _card(tmp_path / "decoder")
    assert "license" not in data
    assert "states no license" in text and "gives no BibTeX entry" in text
    assert torch.equal(
        LLaDAUniDecoderPipeline.from_pretrained(tmp_path / "decoder").vq_embedder.prior_token_embedding.weight,
        LLaDAUniDecoderPipeline.from_released(TINY_RELEASED).vq_embedder.prior_token_embedding.weight,
    )
