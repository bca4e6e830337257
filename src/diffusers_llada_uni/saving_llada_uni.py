# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""What a saved or converted LLaDA2.0-Uni folder holds besides weights and configs: its code, the diffusers way, and
its model card.

Code: `model_index.json` names the pipeline and this package's components by file (`["pipeline_llada_uni_decoder",
"LLaDAUniDecoderPipeline"]`, `["modeling_sigvq", "SigVQEmbedding"]`), the pipeline's module and the modules it
imports sit next to `model_index.json`, and each such component's module sits in the component's folder (diffusers'
custom pipeline and custom components). So `DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)` loads
it on a machine without our packages. Loading through the pipeline class itself needs no remote code: the mixin below
resolves those file names to the modules the class was imported from.

This module is shipped with that code, so it imports nothing of our packages.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline


CARD_NAME = "README.md"
MODEL_INDEX_NAME = "model_index.json"

__all__ = [
    "LLaDAUniPipelineFolderMixin",
    "write_pipeline_code",
    "read_card_info",
    "write_model_card",
    "write_pipeline_files",
    "write_end_to_end_files",
    "write_folder",
    "save_folder",
    "push_folder_to_hub",
]


def _module_files(cls) -> list[Path]:
    """The module file of `cls` and the modules it imports relatively (what diffusers copies for remote code)."""
    from diffusers.utils.dynamic_modules_utils import get_relative_import_files

    module_file = Path(sys.modules[cls.__module__].__file__)
    return [module_file, *(Path(p) for p in get_relative_import_files(str(module_file)))]


def _own_package(cls) -> str:
    return cls.__module__.rpartition(".")[0]


def write_pipeline_code(pipeline: DiffusionPipeline, folder: str | os.PathLike, include_code: bool = True) -> None:
    """Make the pipeline folder `folder` (written by `save_pretrained` / `save_config`) carry its code: rewrite
    `model_index.json` to name the pipeline and this package's components by file, and copy their modules. Without
    `include_code`, only the machine-specific `_name_or_path` is dropped from `model_index.json`."""
    folder = Path(folder)
    cls = type(pipeline)
    package = _own_package(cls)
    index_path = folder / MODEL_INDEX_NAME
    with open(index_path, encoding="utf-8") as f:
        index = json.load(f)
    index.pop("_name_or_path", None)
    if include_code:
        _add_code(pipeline, folder, index, package)
    with open(index_path, "w", encoding="utf-8") as f:
        json.dump(index, f, indent=2, sort_keys=True)
        f.write("\n")


def _add_code(pipeline, folder: Path, index: dict, package: str) -> None:
    cls = type(pipeline)
    for path in _module_files(cls):
        shutil.copyfile(path, folder / path.name)
    index["_class_name"] = [cls.__module__.rpartition(".")[2], cls.__name__]
    for name, value in list(index.items()):
        if name.startswith("_") or not isinstance(value, list) or len(value) != 2 or value[0] is None:
            continue
        component = getattr(pipeline, name, None)
        if component is None or _own_package(type(component)) != package:
            continue
        (folder / name).mkdir(exist_ok=True)
        for path in _module_files(type(component)):
            shutil.copyfile(path, folder / name / path.name)
        index[name] = [type(component).__module__.rpartition(".")[2], type(component).__name__]


class LLaDAUniPipelineFolderMixin:
    """Loads folders written with `write_pipeline_code` through the pipeline class itself, without remote code.

    A folder names its code by file; loaded through this class, those names resolve to the modules this class comes
    from (our package, or the remote copy diffusers imported), so components never mix with a second copy of the same
    code.
    """

    @classmethod
    def load_config(cls, *args: Any, **kwargs: Any) -> dict[str, Any] | tuple[dict[str, Any] | str | None, ...]:
        loaded = super().load_config(*args, **kwargs)
        config = loaded[0] if isinstance(loaded, tuple) else loaded
        name = config.get("_class_name")
        if isinstance(name, (list, tuple)) and len(name) == 2 and name[1] == cls.__name__:
            # This very class: no custom pipeline file to load.
            config["_class_name"] = cls.__name__
        folder = kwargs.get("pretrained_model_name_or_path", args[0] if args else None)
        if folder is not None and os.path.isdir(folder) and os.path.isfile(os.path.join(folder, MODEL_INDEX_NAME)):
            # diffusers would look for a missing component's files in the pipeline folder itself and report a
            # config.json missing there; every component of these pipelines has its own folder.
            for component, value in config.items():
                listed = isinstance(value, (list, tuple)) and len(value) == 2 and value[0] is not None
                if not component.startswith("_") and listed and not os.path.isdir(os.path.join(folder, component)):
                    raise FileNotFoundError(
                        f"{os.path.join(folder, component)} is missing: the pipeline's `{component}` ({value[1]}), "
                        f"which {MODEL_INDEX_NAME} lists."
                    )
        return loaded

    @classmethod
    def extract_init_dict(
        cls, config_dict: dict[str, Any], **kwargs: Any
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        init_dict, unused_kwargs, hidden = super().extract_init_dict(config_dict, **kwargs)
        package = _own_package(cls)
        for name, value in init_dict.items():
            by_file = isinstance(value, (list, tuple)) and len(value) == 2 and isinstance(value[0], str)
            if by_file and "." not in value[0]:
                module = f"{package}.{value[0]}" if package else value[0]
                if module in sys.modules:
                    init_dict[name] = [module, value[1]]
        return init_dict, unused_kwargs, hidden


# ---------------------------------------------------------------------------------------------------- model cards

_BIBTEX = re.compile(r"```(?:bibtex|bib|latex)?\s*\n(@.*?)```", re.DOTALL | re.IGNORECASE)


def read_card_info(folder: str | os.PathLike | None) -> dict:
    """`{"license", "citation", "base_model"}` from a folder's model card (the source of a conversion, or the folder a
    pipeline was loaded from); missing entries are left out."""
    if folder is None or not (Path(folder) / CARD_NAME).is_file():
        return {}
    from huggingface_hub import ModelCard

    try:
        card = ModelCard.load(Path(folder) / CARD_NAME, ignore_metadata_errors=True)
    except Exception:  # a card that is not valid YAML + Markdown carries nothing usable
        return {}
    info = {}
    for key in ("license", "license_name", "license_link", "base_model"):
        value = getattr(card.data, key, None) or card.data.to_dict().get(key)
        if value:
            info[key] = value
    match = _BIBTEX.search(card.text or "")
    if match:
        info["citation"] = match.group(1).strip()
    return info


def _load_snippets(kind: str, turbo: bool | None, remote_code: bool) -> str:
    if kind == "decoder":
        with_package = (
            "from diffusers_llada_uni import LLaDAUniDecoderPipeline\n\n"
            'pipe = LLaDAUniDecoderPipeline.from_pretrained("path/to/this/folder")\n'
            "image = pipe(codes, grid_size=(h, w)).images[0]  # h * w image codes from the language model"
        )
        without = (
            "from diffusers import DiffusionPipeline\n\n"
            'pipe = DiffusionPipeline.from_pretrained("path/to/this/folder", trust_remote_code=True)\n'
            "image = pipe(codes, grid_size=(h, w)).images[0]"
        )
    else:
        with_package = (
            "from diffusers_llada_uni import LLaDAUniTextToImagePipeline\n\n"
            'pipe = LLaDAUniTextToImagePipeline.from_pretrained("path/to/this/folder")\n'
            'image = pipe("A red fox in the snow").images[0]'
        )
        without = (
            "from diffusers import DiffusionPipeline\n"
            "from transformers import AutoModel, AutoModelForCausalLM, AutoProcessor\n\n"
            'path = "path/to/this/folder"\n'
            "model = AutoModelForCausalLM.from_pretrained(path, trust_remote_code=True)\n"
            "processor = AutoProcessor.from_pretrained(path, trust_remote_code=True)\n"
            'image_tokenizer = AutoModel.from_pretrained(f"{path}/image_tokenizer", trust_remote_code=True)\n'
            'decoder = DiffusionPipeline.from_pretrained(f"{path}/decoder-turbo", trust_remote_code=True)\n\n'
            'result = model.generate_image("A red fox in the snow", tokenizer=processor.tokenizer)\n'
            "image = decoder(result.token_ids, grid_size=(result.h, result.w)).images[0]"
        )
    text = f"With the `llada-uni` package installed:\n\n```python\n{with_package}\n```\n"
    if remote_code:
        text += (
            "\nWithout it, with only transformers and diffusers (the code ships in this folder):\n\n"
            f"```python\n{without}\n```\n"
        )
    else:
        text += "\nThis folder carries no code files: it loads with the `llada-uni` package only.\n"
    return text


def write_model_card(
    folder: str | os.PathLike,
    kind: str,
    *,
    turbo: bool | None = None,
    remote_code: bool = True,
    license: str | None = None,
    license_name: str | None = None,
    license_link: str | None = None,
    citation: str | None = None,
    base_model: str | None = None,
    notice: str | None = None,
) -> Path:
    """Write `folder/README.md`, the model card of a converted or saved LLaDA2.0-Uni folder: what it is, how to load
    it with and without the package, the source's license and the original's citation.

    Args:
        folder: the folder the card describes.
        kind: `"end_to_end"` (language model at the top, image tokenizer and decoders in sub-folders) or `"decoder"`
            (one decoder pipeline folder).
        turbo: for a decoder, whether it is the distilled 8-step one.
        remote_code: whether the folder carries its code (then the card shows loading without the package).
        license, license_name, license_link: the source's license, as its card states it (None: not stated).
        citation: the original's BibTeX entry, as the source's card gives it.
        base_model: the Hub id of the source, when known.
        notice: a paragraph shown first (e.g. that the weights are random).
    """
    from huggingface_hub import ModelCard, ModelCardData

    if kind not in ("end_to_end", "decoder"):
        raise ValueError(f"`kind` must be 'end_to_end' or 'decoder', got {kind!r}.")
    tags = ["llada-uni", "masked-diffusion"]
    if kind == "decoder":
        tags += ["text-to-image", "image-decoder"]
        title = f"LLaDA2.0-Uni image decoder ({'distilled 8-step turbo' if turbo else '50-step'})"
        about = (
            "The image decoder of LLaDA2.0-Uni as a diffusers pipeline: image codes (one per 16 x 16 px cell of the "
            "language model's grid, raster order) -> SigVQ embedding -> Z-Image DiT flow matching -> Flux VAE. A grid "
            "of h x w codes gives an image of 32 h x 32 w pixels. "
            + ("This is the distilled decoder: 8 steps, no guidance." if turbo else
               "This is the 50-step decoder of the original, with guidance against empty caption features.")
        )
    else:
        tags += ["any-to-any", "text-to-image", "image-to-text", "mixture-of-experts"]
        title = "LLaDA2.0-Uni for transformers and diffusers"
        about = (
            "LLaDA2.0-Uni is one masked-diffusion language model (a Mixture-of-Experts) that reads and writes text and "
            "image tokens: text generation, image understanding, text-to-image (optionally thinking first) and image "
            "editing. In this folder every part loads with `from_pretrained`:\n\n"
            "| part | where | loads with |\n|---|---|---|\n"
            "| language model | top level | `AutoModelForCausalLM` |\n"
            "| tokenizer and image processor | top level | `AutoProcessor` |\n"
            "| SigLIP-VQ image tokenizer | `image_tokenizer/` | `AutoModel` |\n"
            "| image decoders | `decoder/` (50 steps), `decoder-turbo/` (8 steps) | `DiffusionPipeline` |"
        )
    if license is None and license_name is not None:
        license = "other"  # the Hub's value for a license named by `license_name` / `license_link`
    data = ModelCardData(
        license=license,
        license_name=license_name,
        license_link=license_link,
        base_model=base_model,
        library_name="diffusers" if kind == "decoder" else "transformers",
        tags=tags,
    )
    license_text = (
        f"`{license_name or license}`, as stated by the source checkpoint"
        + (f" ({license_link})" if license_link else "")
        + "; the terms of the original LLaDA2.0-Uni release apply."
        if license
        else "The source checkpoint's card states no license: the terms of the original LLaDA2.0-Uni release apply."
    )
    citation_text = (
        f"```bibtex\n{citation}\n```" if citation else
        "Cite the original LLaDA2.0-Uni release (inclusionAI); the source checkpoint's card gives no BibTeX entry."
    )
    sections = [f"# {title}", notice, about, "## How to load", _load_snippets(kind, turbo, remote_code),
                "## License", license_text, "## Citation", citation_text]
    content = f"---\n{data.to_yaml()}\n---\n\n" + "\n\n".join(s.strip() for s in sections if s) + "\n"
    path = Path(folder) / CARD_NAME
    ModelCard(content).save(path)
    return path


def write_pipeline_files(pipeline: DiffusionPipeline, folder: str | os.PathLike, include_code: bool = True,
                         card: dict | None = None, source: str | os.PathLike | None = None) -> None:
    """Everything a pipeline folder holds besides weights and configs: the code (see `write_pipeline_code`) and the
    model card, with the license and citation of `source`'s card (or of `card`)."""
    write_pipeline_code(pipeline, folder, include_code=include_code)
    info = {**read_card_info(source), **(card or {})}
    turbo = getattr(pipeline.config, "turbo", None)
    kind = "decoder" if turbo is not None else "end_to_end"
    write_model_card(folder, kind, turbo=turbo, remote_code=include_code, **info)


def write_end_to_end_files(folder: str | os.PathLike, pipeline_class: type[DiffusionPipeline],
                           components: dict[str, type | None], source: str | os.PathLike | None = None,
                           card: dict | None = None) -> None:
    """The top-level `model_index.json` and model card of an end-to-end folder (language model, processor and image
    tokenizer from transformers, the decoder pipelines in their sub-folders).

    Args:
        folder: the end-to-end folder, its parts already written.
        pipeline_class: the end-to-end pipeline class the index names.
        components: component name -> its class (None: not in this folder).
        source: a folder whose model card gives the license and citation.
        card: license / citation entries that take precedence over `source`'s.
    """
    from diffusers import __version__ as diffusers_version
    from diffusers.pipelines.pipeline_loading_utils import _fetch_class_library_tuple

    folder = Path(folder)
    index = {"_class_name": pipeline_class.__name__, "_diffusers_version": diffusers_version}
    for name, cls in components.items():
        index[name] = list(_fetch_class_library_tuple(cls)) if cls is not None else [None, None]
    with open(folder / MODEL_INDEX_NAME, "w", encoding="utf-8") as f:
        json.dump(index, f, indent=2, sort_keys=True)
        f.write("\n")
    info = {**read_card_info(source), **(card or {})}
    write_model_card(folder, "end_to_end", remote_code=any(folder.glob("*.py")), **info)


def write_folder(final: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """`write(folder)` into a folder that appears at `final` complete or not at all (our packages' atomic writer).
    A remote-code copy of this module on a machine without our packages writes in place, as diffusers does."""
    try:
        io_utils = importlib.import_module("transformers_llada_uni.io_utils_llada_uni")
    except ImportError:
        Path(final).mkdir(parents=True, exist_ok=True)
        write(Path(final))
        return Path(final)
    return io_utils.write_directory_atomically(final, write)


def save_folder(pipeline: DiffusionPipeline, save_directory: str | os.PathLike, write: Callable[[Path], None],
                safe_serialization: bool = True, push_to_hub: bool = False, **kwargs: Any) -> None:
    """What every LLaDA2.0-Uni pipeline's `save_pretrained` does around writing its parts: check the options, write
    the folder atomically with `write(folder)`, and upload it with diffusers' hub options (`repo_id`, `token`,
    `private`, `commit_message`, `create_pr`) when `push_to_hub`."""
    if not safe_serialization:
        raise ValueError("Only safetensors serialization is supported.")
    hub_options = ("repo_id", "token", "private", "commit_message", "create_pr")
    hub_kwargs = {k: kwargs.pop(k) for k in hub_options if k in kwargs}
    if kwargs:
        raise TypeError(f"Unexpected arguments: {sorted(kwargs)}.")
    write_folder(save_directory, write)
    if push_to_hub:
        push_folder_to_hub(pipeline, save_directory, **hub_kwargs)


def push_folder_to_hub(pipeline: DiffusionPipeline, folder: str | os.PathLike, repo_id: str | None = None,
                       token: str | None = None, private: bool | None = None, commit_message: str | None = None,
                       create_pr: bool = False) -> None:
    """Upload a saved folder as `DiffusionPipeline.save_pretrained(push_to_hub=True)` does, keeping its own card."""
    from huggingface_hub import create_repo

    repo_id = create_repo(repo_id or Path(folder).name, exist_ok=True, private=private, token=token).repo_id
    pipeline._upload_folder(folder, repo_id, token=token, commit_message=commit_message, create_pr=create_pr)
