# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""The code files a converted transformers part ships so that `trust_remote_code=True` loads it without our package."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PretrainedConfig


def code_files(classes: Iterable[type]) -> list[Path]:
    """The module files of `classes` and everything they import relatively."""
    from transformers.dynamic_module_utils import get_relative_import_files

    files = []
    for cls in classes:
        module_file = sys.modules[cls.__module__].__file__
        for path in [module_file, *get_relative_import_files(module_file)]:
            if Path(path) not in files:
                files.append(Path(path))
    return files


def add_remote_code(config: PretrainedConfig, classes: dict[str, type], out: Path) -> None:
    """Copy the code of `classes` ({auto class name: class}) into `out` and point `config.auto_map` at it."""
    config.auto_map = {auto: f"{cls.__module__.rsplit('.', 1)[-1]}.{cls.__name__}" for auto, cls in classes.items()}
    for path in code_files(classes.values()):
        shutil.copyfile(path, out / path.name)


def strip_remote_code(out: Path) -> None:
    """Drop the code files and `auto_map` entries that `save_pretrained` of registered classes adds."""
    for path in out.glob("*.py"):
        path.unlink()
    for path in out.glob("*.json"):
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        if isinstance(data, dict) and "auto_map" in data:
            del data["auto_map"]
            with open(path, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=2, sort_keys=True)
                f.write("\n")
