# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""Files and folders that appear complete or not at all: written next to their destination, then renamed into place."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def replace_directory(tmp: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Moves the finished folder `tmp` to `dst`. Until the final rename an existing `dst` is untouched, and it is
    put back if that rename fails."""
    tmp, dst = Path(tmp), Path(dst)
    old = None
    if dst.exists() or dst.is_symlink():
        old = dst.parent / f".{dst.name}.old-{os.getpid()}"
        os.rename(dst, old)
    try:
        os.rename(tmp, dst)
    except BaseException:
        if old is not None:
            os.rename(old, dst)
        raise
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink()


def write_directory_atomically(final: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Calls `write(tmp)` on a temporary sibling of `final`, then renames it to `final` (replacing an existing one).
    On any error, or an interrupt, the temporary folder is removed and `final` is left as it was."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        write(tmp)
        replace_directory(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def write_file_atomically(final: str | os.PathLike, write: Callable[[BinaryIO], object]) -> Path:
    """Calls `write(file)` with a temporary sibling of `final` open for binary writing, forces it to disk, then renames
    it to `final` (replacing an existing file). On any error (a full disk included), or an interrupt, the temporary
    file is removed and an existing `final` is left as it was. The file gets the user's umask, as `open` gives."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.{secrets.token_hex(4)}.partial")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as file:
            write(file)
            file.flush()
            # A full disk often shows only here (delayed allocation): before the rename, not after it.
            os.fsync(file.fileno())
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return final
