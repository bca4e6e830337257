"""Faults a conversion (or any folder write) must survive without losing anything, each reproduced first: a folder
appearing at DST during the run, a second writer, interrupts at every step of replacing DST, killed runs, a full disk,
damaged released files; every error is one line that names the file."""

import errno
import json
import os
import shutil
import socket
from pathlib import Path

import pytest
import torch

from diffusers_llada_uni import LLaDAUniDecoderPipeline
from llada_uni_cli.main import main
from llada_uni_conversion import CheckpointError, convert
from transformers_llada_uni import io_utils_llada_uni as io_utils
from transformers_llada_uni.io_utils_llada_uni import (
    DirectoryTransaction,
    FolderBusyError,
    FolderLock,
    recover,
    replace_directory,
    write_directory_atomically,
)
from transformers_llada_uni.released_layout_llada_uni import detect_layout

from conftest import TINY_RELEASED
from test_conversion_errors import released  # noqa: F401  (the fixture: a private copy of the tiny release)


def _quiet(**kwargs):
    return dict(progress=False, verify=False, log=lambda message: None, **kwargs)


def _hidden(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def _folder(path: Path, **files) -> Path:
    path.mkdir(parents=True)
    for name, text in files.items():
        (path / name).write_text(text)
    return path


def _tree(path: Path) -> dict:
    return {p.relative_to(path).as_posix(): p.read_text() for p in sorted(path.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------------ DST races (14.1)


def _during_conversion(monkeypatch, action):
    """Run `action()` in the middle of the next conversion (after everything is written, before the final move)."""
    from llada_uni_conversion import converter

    original = converter.write_end_to_end_index

    def hooked(*args, **kwargs):
        original(*args, **kwargs)
        action()

    monkeypatch.setattr(converter, "write_end_to_end_index", hooked)


@pytest.mark.parametrize("content", [{"precious.txt": "mine"}, {}], ids=["with a file", "empty"])
def test_a_folder_created_at_dst_during_the_run_is_never_replaced(released, monkeypatch, content):
    dst = released.parent / "dst"
    _during_conversion(monkeypatch, lambda: _folder(dst, **content))
    with pytest.raises(FileExistsError, match="appeared while it was being written") as info:
        convert(released, dst, **_quiet())
    assert str(dst) in str(info.value) and "\n" not in str(info.value)
    assert _tree(dst) == content and sorted(p.name for p in dst.iterdir()) == sorted(content)
    assert _hidden(released.parent) == []  # no partial folder, no lock left


def test_a_second_writer_of_the_same_dst_is_refused_while_the_first_runs(released):
    dst = released.parent / "dst"
    with FolderLock(dst):  # what a running conversion holds
        with pytest.raises(FolderBusyError, match=f"pid {os.getpid()}") as info:
            convert(released, dst, **_quiet())
        assert "wait for that run to finish" in str(info.value)
    assert not dst.exists()
    convert(released, dst, **_quiet())  # once the first run is done
    assert (dst / "config.json").is_file() and _hidden(released.parent) == []


def _write_lock(dst: Path, **owner) -> Path:
    lock = dst.parent / f".{dst.name}.lock"
    lock.write_text(json.dumps(owner))
    return lock


def test_a_lock_from_another_machine_is_never_taken_over(released):
    dst = released.parent / "dst"
    lock = _write_lock(dst, host="other-host", boot_id="0000-other-kernel", pid=1234, started="2026-01-01T00:00:00")
    partial = _folder(released.parent / ".dst.partial-1234", **{"shard": "being written over NFS"})
    with pytest.raises(FolderBusyError, match="another machine") as info:
        convert(released, dst, **_quiet())
    assert str(lock) in str(info.value) and "other-host" in str(info.value)
    assert partial.exists() and lock.exists()  # the other machine's work is left alone
    lock.unlink()  # as the message says, once that run is known to be gone
    convert(released, dst, **_quiet())
    assert not partial.exists() and _hidden(released.parent) == []


def test_a_lock_left_by_a_dead_run_on_this_machine_is_taken_over(released):
    dst = released.parent / "dst"
    identity = io_utils._identity()
    _write_lock(dst, host=socket.gethostname(), boot_id=identity["boot_id"], pid=2**22 + 17, started="then")
    partial = _folder(released.parent / f".dst.partial-{2**22 + 17}", shard="half")
    messages = []
    convert(released, dst, progress=False, verify=False, log=messages.append)
    assert not partial.exists() and _hidden(released.parent) == []
    assert any("Removed .dst.partial-" in m for m in messages)


# ------------------------------------------------------------------------------- the swap of DST (14.2)


class _Interrupt:
    """Replaces `name` in io_utils' `os` / `shutil` calls: the `n`-th call raises KeyboardInterrupt, before (`after=False`)
    or after (`after=True`) doing its work."""

    def __init__(self, monkeypatch, target, name, n, after=False):
        self.calls = 0
        original = getattr(target, name)

        def hooked(*args, **kwargs):
            self.calls += 1
            if self.calls == n and not after:
                raise KeyboardInterrupt(f"{name} #{n}")
            result = original(*args, **kwargs)
            if self.calls == n and after:
                raise KeyboardInterrupt(f"after {name} #{n}")
            return result

        monkeypatch.setattr(target, name, hooked)


@pytest.fixture
def swap(tmp_path):
    """An existing DST (old content) and a finished new folder for it, inside a transaction's lock."""
    old = _folder(tmp_path / "dst", **{"old.txt": "old"})
    return tmp_path, old


def _replace(tmp_path, log=None):
    with DirectoryTransaction(tmp_path / "dst", overwrite=True, log=log) as transaction:
        (transaction.path / "new.txt").write_text("new")
        transaction.commit()


@pytest.mark.parametrize(
    "step, after, expected",
    [
        ("rename", False, {"old.txt": "old"}),  # moving DST aside never happened
        ("rename", True, {"old.txt": "old"}),  # DST is aside, the new folder not yet in place: put back
        ("rename#2", False, {"old.txt": "old"}),  # moving the new folder in failed: put back
    ],
)
def test_an_interrupt_before_the_new_folder_is_in_place_leaves_dst_as_it_was(swap, monkeypatch, step, after, expected):
    tmp_path, _ = swap
    n = 2 if step.endswith("#2") else 1
    _Interrupt(monkeypatch, io_utils.os, "rename", n, after=after)
    messages = []
    with pytest.raises(KeyboardInterrupt):
        _replace(tmp_path, log=messages.append)
    assert _tree(tmp_path / "dst") == expected
    assert _hidden(tmp_path) == []
    if after:
        assert any(m.startswith("Restored") for m in messages)  # the interrupted run itself said so


def test_an_interrupt_while_deleting_the_old_copy_keeps_the_replacement_and_says_so(swap, monkeypatch):
    tmp_path, _ = swap
    _Interrupt(monkeypatch, io_utils.shutil, "rmtree", 1)
    messages = []
    _replace(tmp_path, log=messages.append)  # the replacement is done: no "interrupted" failure
    assert _tree(tmp_path / "dst") == {"new.txt": "new"}
    assert any("is replaced, but deleting the previous copy" in m for m in messages)
    leftover = [name for name in _hidden(tmp_path) if ".old-" in name]
    assert leftover
    monkeypatch.undo()
    with FolderLock(tmp_path / "dst"):
        said = recover(tmp_path / "dst")
    assert said == [f"Finished an interrupted replacement of {tmp_path / 'dst'}: removed the previous copy {leftover[0]}."]
    assert _hidden(tmp_path) == [] and _tree(tmp_path / "dst") == {"new.txt": "new"}


@pytest.mark.parametrize("killed_after", ["aside", "new in place", "partial only"])
def test_a_killed_swap_is_restored_or_finished_by_the_next_writer(tmp_path, killed_after):
    """What a SIGKILL at each step leaves on disk (no handler ran), then the next write of DST."""
    dst = tmp_path / "dst"
    _folder(tmp_path / ".dst.partial-999999", **{"new.txt": "new"})
    if killed_after == "aside":
        _folder(tmp_path / ".dst.old-999999", **{"old.txt": "old"})
    elif killed_after == "new in place":
        _folder(tmp_path / ".dst.old-999999", **{"old.txt": "old"})
        shutil.rmtree(tmp_path / ".dst.partial-999999")
        _folder(dst, **{"new.txt": "new"})
    else:
        _folder(dst, **{"old.txt": "old"})
    before = _tree(dst) if dst.exists() else None
    messages = []
    with pytest.raises(FileExistsError):  # a later run without overwrite: recovery first, then the usual refusal
        with DirectoryTransaction(dst, overwrite=False, log=messages.append):
            pass
    assert _hidden(tmp_path) == []
    if killed_after == "aside":
        assert _tree(dst) == {"old.txt": "old"}
        assert messages[0].startswith(f"Restored {dst} from .dst.old-999999")
    elif killed_after == "new in place":
        assert _tree(dst) == before == {"new.txt": "new"}
        assert messages[0] == f"Finished an interrupted replacement of {dst}: removed the previous copy .dst.old-999999."
    else:
        assert _tree(dst) == before
    if killed_after != "new in place":
        assert messages[-1] == f"Removed .dst.partial-999999, left by an interrupted write of {dst}."


def test_replace_directory_replaces_files_and_links_too(tmp_path):
    new = _folder(tmp_path / "new", **{"a": "1"})
    target = tmp_path / "target"
    target.write_text("a file")
    replace_directory(new, target)
    assert _tree(target) == {"a": "1"}


def test_conversion_over_dst_interrupted_while_deleting_the_old_copy(released, monkeypatch):
    dst = _folder(released.parent / "dst", **{"old.txt": "old"})
    original = io_utils._remove

    def interrupted(path):
        if ".old-" in path.name:
            raise KeyboardInterrupt
        original(path)

    monkeypatch.setattr(io_utils, "_remove", interrupted)
    messages = []
    assert convert(released, dst, overwrite=True, progress=False, verify=False, log=messages.append) == dst
    assert (dst / "config.json").is_file() and not (dst / "old.txt").exists()
    assert any("is replaced, but deleting the previous copy" in m for m in messages)
    assert messages[-1] == f"Converted {released} -> {dst}"
    monkeypatch.undo()
    messages.clear()
    convert(released, dst, overwrite=True, progress=False, verify=False, log=messages.append)
    assert any(m.startswith("Finished an interrupted replacement") for m in messages)
    assert _hidden(released.parent) == []


# ------------------------------------------------------------------------------------------ a full disk


def test_a_full_disk_loses_nothing_and_names_the_file(released, monkeypatch, capsys):
    from llada_uni_conversion import safetensors_stream

    dst = _folder(released.parent / "dst", **{"old.txt": "old"})
    original = safetensors_stream._write_file

    def full_disk(path, raw, entries, on_tensor):
        if Path(path).parent.name == "transformer":
            with open(path, "wb") as f:
                f.write(raw[:10])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return original(path, raw, entries, on_tensor)

    monkeypatch.setattr(safetensors_stream, "_write_file", full_disk)
    with pytest.raises(OSError, match="No space left on device") as info:
        convert(released, dst, overwrite=True, **_quiet())
    assert "transformer/diffusion_pytorch_model.safetensors" in str(info.value)
    assert _tree(dst) == {"old.txt": "old"} and _hidden(released.parent) == []
    # The command line: status 1, one line naming the file, no traceback.
    capsys.readouterr()
    assert main(["convert", str(released), str(dst), "--overwrite", "--no-verify", "--no-progress"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("llada-uni convert: error: ") and "No space left on device" in err[-1]
    assert "diffusion_pytorch_model.safetensors" in err[-1] and "Traceback" not in "\n".join(err)
    assert _tree(dst) == {"old.txt": "old"} and _hidden(released.parent) == []


# ------------------------------------------------------------------------------ messages that name the file (14.8)


@pytest.mark.parametrize(
    "relative",
    ["decoder/decoder_model.safetensors", "vae/diffusion_pytorch_model.safetensors", "model-00002-of-00002.safetensors",
     "image_tokenizer/image_tokenizer.safetensors"],
)
def test_a_truncated_safetensors_file_is_named(released, relative):
    path = released / relative
    path.write_bytes(path.read_bytes()[:-64])
    with pytest.raises(CheckpointError) as info:
        convert(released, released.parent / "dst", **_quiet())
    assert str(path) in str(info.value) and "truncated" in str(info.value)
    if relative.startswith(("decoder", "vae")):
        with pytest.raises(CheckpointError) as info:
            LLaDAUniDecoderPipeline.from_released(released)
        assert str(path) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("relative", ["decoder/config.json", "model.safetensors.index.json", "config.json"])
def test_malformed_json_is_named(released, relative):
    (released / relative).write_text('{"weight_map": {"a": ')
    with pytest.raises(CheckpointError, match="not valid JSON") as info:
        convert(released, released.parent / "dst", **_quiet())
    assert str(released / relative) in str(info.value)
    if relative == "decoder/config.json":
        with pytest.raises(CheckpointError, match="not valid JSON") as info:
            LLaDAUniDecoderPipeline.from_released(released)
        assert str(released / relative) in str(info.value)
    if relative == "config.json":
        with pytest.raises(CheckpointError, match="not valid JSON") as info:
            detect_layout(released)
        assert str(released / relative) in str(info.value)


def test_a_decoder_weight_index_with_bad_json_is_named(released):
    folder = released / "decoder"
    (folder / "decoder_model.safetensors.index.json").write_text("not json")
    with pytest.raises(CheckpointError, match="not valid JSON") as info:
        LLaDAUniDecoderPipeline.from_released(released)
    assert "decoder_model.safetensors.index.json" in str(info.value)


def test_a_truncated_sigvq_embedding_gives_a_real_message(released):
    path = released / "image_tokenizer" / "sigvq_embedding.pt"
    path.write_bytes(path.read_bytes()[:300])
    for call in (lambda: convert(released, released.parent / "dst", **_quiet()),
                 lambda: LLaDAUniDecoderPipeline.from_released(released)):
        with pytest.raises(CheckpointError) as info:
            call()
        message = str(info.value)
        assert str(path) in message and "truncated or damaged" in message
        assert "Errno" not in message and "\n" not in message


def test_a_converted_decoder_without_its_vae_is_named(tmp_path):
    out = tmp_path / "decoder-turbo"
    LLaDAUniDecoderPipeline.from_released(TINY_RELEASED, turbo=True).save_pretrained(out)
    shutil.rmtree(out / "vae")
    with pytest.raises(FileNotFoundError) as info:
        LLaDAUniDecoderPipeline.from_pretrained(out)
    assert str(out / "vae") in str(info.value) and "AutoencoderKL" in str(info.value)
    assert "config.json" not in str(info.value)


def test_a_released_vae_without_safetensors_is_refused_without_reading_pickle(released, monkeypatch):
    from safetensors.torch import load_file

    vae = released / "vae"
    state = load_file(vae / "diffusion_pytorch_model.safetensors")
    (vae / "diffusion_pytorch_model.safetensors").unlink()
    torch.save(state, vae / "diffusion_pytorch_model.bin")
    real_load = torch.load

    def no_pickle(path, *args, **kwargs):
        assert not str(path).endswith(".bin"), f"a pickle was read: {path}"
        return real_load(path, *args, **kwargs)

    monkeypatch.setattr(torch, "load", no_pickle)
    for call in (lambda: LLaDAUniDecoderPipeline.from_released(released),
                 lambda: convert(released, released.parent / "dst", **_quiet())):
        with pytest.raises(FileNotFoundError) as info:
            call()
        assert str(vae / "diffusion_pytorch_model.safetensors") in str(info.value)
        assert "only safetensors" in str(info.value) and ".bin" not in str(info.value)


def test_from_released_asks_diffusers_for_safetensors_only(monkeypatch):
    from diffusers import AutoencoderKL

    seen = {}
    original = AutoencoderKL.from_pretrained.__func__

    def spy(cls, *args, **kwargs):
        seen.update(kwargs)
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(AutoencoderKL, "from_pretrained", classmethod(spy))
    LLaDAUniDecoderPipeline.from_released(TINY_RELEASED, turbo=True)
    assert seen.get("use_safetensors") is True


# --------------------------------------------------------------------------------------- up-front checks (14.9)


def test_converting_into_the_working_folder_is_refused_before_any_work(released, monkeypatch):
    from llada_uni_conversion import converter

    def never(*args):
        raise AssertionError("the source was inspected before the destination was checked")

    monkeypatch.setattr(converter, "inspect_released", never)
    work = _folder(released.parent / "work", **{"notes.txt": "mine"})
    monkeypatch.chdir(work)
    for dst in (".", str(work), str(work.parent)):
        with pytest.raises(ValueError, match="working folder") as info:
            convert(released if dst != str(work.parent) else TINY_RELEASED, dst, overwrite=True, **_quiet())
        assert "\n" not in str(info.value)
    assert _tree(work) == {"notes.txt": "mine"}


def test_folders_are_created_with_the_users_umask(released, tmp_path):
    previous = os.umask(0o027)
    try:
        dst = convert(released, tmp_path / "converted", **_quiet())
        saved = write_directory_atomically(tmp_path / "saved", lambda folder: (folder / "a").write_text("1"))
    finally:
        os.umask(previous)
    for folder in (dst, dst / "decoder", saved):
        assert folder.stat().st_mode & 0o777 == 0o750, folder


def test_save_pretrained_accepts_the_hub_arguments_without_pushing(tmp_path, monkeypatch):
    from diffusers_llada_uni import saving_llada_uni

    pushed = []
    pipe = LLaDAUniDecoderPipeline.from_released(TINY_RELEASED, turbo=True)
    monkeypatch.setattr(saving_llada_uni, "push_folder_to_hub",
                        lambda pipe, folder, **kwargs: pushed.append(kwargs))
    pipe.save_pretrained(tmp_path / "a", repo_id="me/decoder", token="t", private=True, commit_message="m",
                         create_pr=False)
    assert pushed == [] and (tmp_path / "a" / "model_index.json").is_file()
    pipe.save_pretrained(tmp_path / "b", push_to_hub=True, repo_id="me/decoder", private=True)
    assert pushed == [{"repo_id": "me/decoder", "private": True}]
    with pytest.raises(TypeError, match="unknown_option"):
        pipe.save_pretrained(tmp_path / "c", unknown_option=1)
