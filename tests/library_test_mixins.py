"""transformers' own common test mixins (`ModelTesterMixin`, `ConfigTester`, `ImageProcessingTestMixin`,
`ProcessorTesterMixin`), taken from the transformers sdist of the installed version.

The wheel does not ship them and their code must not be copied into this repository, so the first use downloads the
sdist from the package registry (`pip download --no-deps --no-binary :all: transformers==<installed>`) into a cache
folder (`$LLADA_UNI_TEST_CACHE`, default `~/.cache/llada-uni-tests`) and imports its `tests/` folder as the package
`transformers_common_tests`.

The sdist's `tests/` lacks four modules that the mixins import. They are provided here, each with what applies:
- `generation.test_utils.GenerationTesterMixin`: transformers' autoregressive `generate` tests. They cannot apply to a
  block-diffusion model (it fills masked blocks; it has no next-token loop), so the mixin is empty; our own generation
  tests cover `generate`.
- `exporters.test_export.ExportTesterMixin`: not shipped; export is not a supported path of this model (empty mixin).
- `utils.test_configuration_utils.config_common_kwargs`: non-default values of `PreTrainedConfig`'s common
  attributes, which `ConfigTester` checks round-trip through a config class; written here from `PreTrainedConfig`'s
  own attributes.
- `distributed_testing_utils`: used only by the tensor-parallel / FSDP mixins, which this project tests with its own
  torchrun tests instead.
- the top-level `fetch_hub_objects_for_ci.url_to_local_path` (from the repository's `utils/`), which maps the sample
  media URLs of `ProcessorTesterMixin` to files: nothing may be downloaded here, so an image URL becomes a small
  generated picture in the cache folder; other media keep their URL (this processor takes no video or audio).
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import tarfile
import tempfile
import types
from pathlib import Path

import transformers


PACKAGE = "transformers_common_tests"


def _cache_dir() -> Path:
    root = os.environ.get("LLADA_UNI_TEST_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "llada-uni-tests")
    return Path(root) / f"transformers-{transformers.__version__}"


def _download_and_extract(target: Path) -> None:
    """Fetch the sdist and extract its top-level `tests/*.py` as the package folder `target` (atomically)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
             f"transformers=={transformers.__version__}", "-d", tmp],
            check=True,
        )
        (archive,) = Path(tmp).glob("transformers-*.tar.gz")
        package = Path(tmp) / PACKAGE
        package.mkdir()
        prefix = f"transformers-{transformers.__version__}/tests/"
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                name = member.name
                if member.isfile() and name.startswith(prefix) and "/" not in name[len(prefix):] and name.endswith(".py"):
                    data = tar.extractfile(member).read()
                    (package / name[len(prefix):]).write_bytes(data)
        (package / "__init__.py").touch()
        try:
            os.rename(package, target)
        except OSError:
            if not target.is_dir():  # another process won the race: its copy is as good as ours
                raise


def _install_missing_modules() -> None:
    def module(name: str, **attrs) -> None:
        full = f"{PACKAGE}.{name}"
        if full in sys.modules:
            return
        parent_name = full.rsplit(".", 1)[0]
        if parent_name not in sys.modules:
            parent = types.ModuleType(parent_name)
            parent.__path__ = []
            sys.modules[parent_name] = parent
        mod = types.ModuleType(full)
        mod.__dict__.update(attrs)
        sys.modules[full] = mod

    class GenerationTesterMixin:
        """Autoregressive generation tests: not applicable to block diffusion (see the module docstring)."""

    class ExportTesterMixin:
        """Not shipped in the sdist; export is not a supported path of this model."""

    # Non-default values of `PreTrainedConfig`'s common attributes (ConfigTester checks they survive `__init__`).
    config_common_kwargs = {
        "return_dict": False,
        "output_hidden_states": True,
        "output_attentions": True,
        "dtype": "float16",
        "tie_word_embeddings": False,
        "is_encoder_decoder": True,
        "cross_attention_hidden_size": 128,
        "add_cross_attention": True,
        "chunk_size_feed_forward": 5,
        "architectures": ["BertModel"],
        "finetuning_task": "translation",
        "id2label": {0: "label"},
        "label2id": {"label": "0"},
        "tokenizer_class": "BertTokenizerFast",
        "prefix": "prefix",
        "bos_token_id": 6,
        "pad_token_id": 7,
        "eos_token_id": 8,
        "sep_token_id": 9,
        "decoder_start_token_id": 10,
        "task_specific_params": {"translation": "some_params"},
        "problem_type": "regression",
    }

    def run_distributed(*args, **kwargs):
        raise NotImplementedError("distributed mixins are replaced by this project's own torchrun tests")

    def url_to_local_path(url: str) -> str:
        if not url.lower().split("?")[0].endswith((".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")):
            return url
        import hashlib

        import numpy as np
        from PIL import Image

        digest = hashlib.sha256(url.encode()).hexdigest()[:16]
        path = _cache_dir() / "media" / f"{digest}.png"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            pixels = np.random.default_rng(int(digest, 16) % 2**32).integers(0, 256, (96, 128, 3), dtype=np.uint8)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            Image.fromarray(pixels).save(tmp, format="PNG")
            os.replace(tmp, path)
        return str(path)

    if "fetch_hub_objects_for_ci" not in sys.modules:
        fetch = types.ModuleType("fetch_hub_objects_for_ci")
        fetch.url_to_local_path = url_to_local_path
        sys.modules["fetch_hub_objects_for_ci"] = fetch
    module("generation.test_utils", GenerationTesterMixin=GenerationTesterMixin)
    module("exporters.test_export", ExportTesterMixin=ExportTesterMixin)
    module("utils.test_configuration_utils", config_common_kwargs=config_common_kwargs)
    module("distributed_testing_utils", run_distributed=run_distributed)


def import_common_tests(module: str):
    """`import_common_tests("test_modeling_common")` -> that module of the installed version's sdist tests."""
    target = _cache_dir() / PACKAGE
    if not target.is_dir():
        _download_and_extract(target)
    parent = str(target.parent)
    if parent not in sys.path:
        sys.path.insert(0, parent)
    importlib.import_module(PACKAGE)  # the real package first: the missing modules hang below it
    _install_missing_modules()
    return importlib.import_module(f"{PACKAGE}.{module}")
