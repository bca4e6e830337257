# Copyright 2026 The LLaDA-Uni HF integration authors. Apache-2.0.
"""Folders that appear complete or not at all, one writer at a time.

A folder `final` is written into a hidden sibling `.{final}.partial-PID` and moved into place at the end. While a
run writes it, the run holds `.{final}.lock`: an advisory `flock` plus the writer's identity (host, kernel boot id,
pid, start time), so a second writer on the same machine or in another container on the same kernel is refused, and
a lock written on another machine (where `flock` may not reach, e.g. NFS) is never taken over silently.

Replacing an existing `final` (overwrite) moves it aside to `.{final}.old-PID`, moves the new folder in, then deletes
the aside. A run interrupted in between (or killed) leaves these names behind; the next writer of `final`, holding the
lock, finishes the job: it puts the aside back when `final` is missing (the new copy never arrived), deletes it when
`final` is in place (only the cleanup was left), deletes left-over partial folders, and says what it did.
"""

from __future__ import annotations

import datetime
import glob
import json
import os
import shutil
import socket
from collections.abc import Callable
from pathlib import Path


try:
    import fcntl
except ImportError:  # Windows: the lock file alone, taken over only from a dead process on this host
    fcntl = None

_PARTIAL = ".partial-"
_ASIDE = ".old-"
_LOCK = ".lock"


class FolderBusyError(RuntimeError):
    """Another run holds the lock of the folder to write; the message names it and the lock file."""


def _sibling(final: Path, kind: str, suffix: str = "") -> Path:
    return final.parent / f".{final.name}{kind}{suffix}"


def _siblings(final: Path, kind: str) -> list[Path]:
    return sorted(final.parent.glob(f".{glob.escape(final.name)}{kind}*"))


def _exists(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif _exists(path):
        path.unlink()


def _boot_id() -> str | None:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            return f.read().strip() or None
    except OSError:
        return None


def _identity() -> dict:
    return {
        "host": socket.gethostname(),
        "boot_id": _boot_id(),
        "pid": os.getpid(),
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def _same_kernel(owner: dict) -> bool:
    """Whether the lock's writer ran on this machine's kernel (containers share it), where `flock` is authoritative."""
    mine = _identity()
    if owner.get("boot_id") and mine["boot_id"]:
        return owner["boot_id"] == mine["boot_id"]
    return owner.get("host") == mine["host"]


def _describe(owner: dict) -> str:
    return f"pid {owner.get('pid')} on host {owner.get('host')!r} (started {owner.get('started')})"


def _pid_alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError, TypeError):
        return False
    except PermissionError:
        return True
    return True


class FolderLock:
    """The lock of one destination folder, held for a whole write (see the module docstring).

    Args:
        final: the folder that will be written.
    """

    def __init__(self, final: str | os.PathLike):
        self.final = Path(final)
        self.path = _sibling(self.final, _LOCK)
        self._fd = None

    def _read_owner(self, fd) -> dict:
        os.lseek(fd, 0, os.SEEK_SET)
        raw = os.read(fd, 65536)
        try:
            owner = json.loads(raw.decode("utf-8")) if raw.strip() else {}
        except (UnicodeDecodeError, json.JSONDecodeError):
            owner = {}
        return owner if isinstance(owner, dict) else {}

    def _busy(self, owner: dict, other_machine: bool = False) -> FolderBusyError:
        if other_machine:
            return FolderBusyError(
                f"{self.final} is locked by {_describe(owner)}, another machine; this one cannot tell whether that run "
                f"is still writing. If it is not, delete {self.path} and try again."
            )
        return FolderBusyError(
            f"{self.final} is being written by {_describe(owner)} (lock {self.path}); wait for that run to finish."
        )

    def acquire(self) -> FolderLock:
        self.final.parent.mkdir(parents=True, exist_ok=True)
        while True:
            flags = os.O_RDWR | os.O_CREAT | (0 if fcntl is not None else os.O_EXCL)
            try:
                fd = os.open(self.path, flags, 0o666)
            except FileExistsError:  # without flock: a lock file from a live process, or a dead one on this host
                with open(self.path, encoding="utf-8", errors="replace") as f:
                    owner = self._read_owner(f.fileno())
                if _same_kernel(owner) and not _pid_alive(owner.get("pid")):
                    self.path.unlink(missing_ok=True)
                    continue
                raise self._busy(owner, other_machine=not _same_kernel(owner)) from None
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    owner = self._read_owner(fd)
                    os.close(fd)
                    raise self._busy(owner) from None
                # A releasing writer unlinks the file while holding it: then this flock is on a dead file; retry.
                try:
                    same_file = os.fstat(fd).st_ino == os.stat(self.path).st_ino
                except FileNotFoundError:
                    same_file = False
                if not same_file:
                    os.close(fd)
                    continue
                owner = self._read_owner(fd)
                if owner and not _same_kernel(owner):
                    os.close(fd)
                    raise self._busy(owner, other_machine=True)
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, (json.dumps(_identity()) + "\n").encode("utf-8"))
            os.fsync(fd)
            self._fd = fd
            return self

    def release(self) -> None:
        if self._fd is None:
            return
        # Unlinked while still held, so a waiting writer never locks a file that is about to vanish (see acquire).
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def recover(final: str | os.PathLike) -> list[str]:
    """Finish or undo what interrupted writes of `final` left behind; returns one line per action. Call it only while
    holding `FolderLock(final)`: then no other run is writing, and everything found here is left over."""
    final = Path(final)
    messages = []
    asides = sorted(_siblings(final, _ASIDE), key=lambda p: p.stat().st_mtime)
    if asides and not _exists(final):
        os.rename(asides[-1], final)
        messages.append(
            f"Restored {final} from {asides[-1].name}: an earlier replacement was interrupted before the new copy was "
            "in place."
        )
        asides = asides[:-1]
    for aside in asides:
        _remove(aside)
        messages.append(f"Finished an interrupted replacement of {final}: removed the previous copy {aside.name}.")
    for partial in _siblings(final, _PARTIAL):
        _remove(partial)
        messages.append(f"Removed {partial.name}, left by an interrupted write of {final}.")
    return messages


def _publish_new(tmp: Path, final: Path) -> None:
    # `rename` onto an existing empty folder silently replaces it: claim the name with `mkdir` (atomic, fails on any
    # existing entry) and rename onto that claim, so something created at `final` meanwhile is never replaced.
    try:
        os.mkdir(final)
    except FileExistsError:
        raise FileExistsError(f"{final} appeared while it was being written; it was left as it is.") from None
    try:
        os.rename(tmp, final)
    except BaseException:
        try:
            os.rmdir(final)  # only our own claim, and only if nothing was put into it
        except OSError:
            pass
        raise


def replace_directory(
    tmp: str | os.PathLike, final: str | os.PathLike, log: Callable[[str], None] | None = None
) -> None:
    """Moves the finished folder `tmp` to `final`, replacing what is there. Until `tmp` is in place, `final` is put
    back on any error or interrupt. Once it is, the replacement stands: an interrupt while deleting the previous copy
    only leaves that copy for the next writer to delete (and is reported through `log`)."""
    tmp, final = Path(tmp), Path(final)
    if not _exists(final):
        _publish_new(tmp, final)
        return
    aside = _sibling(final, _ASIDE, str(os.getpid()))
    os.rename(final, aside)
    try:
        os.rename(tmp, final)
    except BaseException:
        os.rename(aside, final)
        raise
    try:
        _remove(aside)
    except (KeyboardInterrupt, OSError) as err:
        if log is not None:
            log(
                f"{final} is replaced, but deleting the previous copy {aside.name} stopped "
                f"({type(err).__name__}); the next write to {final} deletes it."
            )


class DirectoryTransaction:
    """Write a folder completely or not at all: the lock, the recovery of earlier runs, a partial folder, the move into
    place (`commit`), and on any failure the partial folder's removal.

    Args:
        final: the folder to write.
        overwrite: whether an existing `final` may be replaced; without it an existing `final` is refused, both before
            anything is written and at the final move.
        log: receives one line per recovery action.

    Example:
        ```python
        with DirectoryTransaction(dst, overwrite=False) as tx:
            write_everything(tx.path)
            tx.commit()
        ```
    """

    def __init__(self, final: str | os.PathLike, overwrite: bool = True, log: Callable[[str], None] | None = None):
        self.final = Path(os.path.abspath(final))
        self.overwrite = overwrite
        self.log = log or (lambda message: None)
        self.lock = FolderLock(self.final)
        self.path = _sibling(self.final, _PARTIAL, str(os.getpid()))
        self.committed = False

    def __enter__(self) -> DirectoryTransaction:
        self.lock.acquire()
        try:
            for message in recover(self.final):
                self.log(message)
            if _exists(self.final) and not self.overwrite:
                raise FileExistsError(f"{self.final} already exists; pass --overwrite (overwrite=True) to replace it.")
            # A plain mkdir: the user's umask decides the permissions, as for any folder they create.
            self.path.mkdir()
        except BaseException:
            self.lock.release()
            raise
        return self

    def commit(self) -> None:
        if self.overwrite:
            replace_directory(self.path, self.final, log=self.log)
        else:
            _publish_new(self.path, self.final)
        self.committed = True

    def __exit__(self, exc_type, exc, traceback) -> None:
        try:
            if not self.committed:
                shutil.rmtree(self.path, ignore_errors=True)
                # An interrupt can land between the steps of a swap: undo a half-done one now, not at the next run.
                for message in recover(self.final):
                    self.log(message)
        finally:
            self.lock.release()


def write_directory_atomically(
    final: str | os.PathLike,
    write: Callable[[Path], object],
    overwrite: bool = True,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Calls `write(tmp)` on a partial sibling of `final`, then moves it to `final` (replacing an existing one unless
    `overwrite=False`). On any error or interrupt the partial folder is removed and `final` is left as it was.

    Args:
        final: the folder to write.
        write: fills the folder it is given.
        overwrite: whether an existing `final` may be replaced.
        log: receives one line per recovery of an earlier interrupted write.
    """
    with DirectoryTransaction(final, overwrite=overwrite, log=log) as transaction:
        write(transaction.path)
        transaction.commit()
    return Path(final)
