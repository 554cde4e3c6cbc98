"""Write a file all at once or not at all, and never replace one unless asked.

This is the one writer of every output (pooled files, tiled stage files, the report),
and the one judge of stores written as folders (``check_store_output``): an output is
always a regular file (or a store's folder), never an input or the file standard input
came from, never inside an input nor holding one, written under a temporary name
that says which process wrote it and moved into place, so a killed run leaves only
files the next run recognises and removes.
"""

from __future__ import annotations

import filecmp
import functools
import os
import re
import stat
import tempfile
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from .inputs import file_kind

# mkstemp makes 0600 files; an output should get the permissions any new file gets. The
# umask can only be read by setting it, so it is read once, at import.
_UMASK = os.umask(0o022)
os.umask(_UMASK)

# Temporary names: `.NAME.poolcli-HOST-PID.RANDOM.part` (outputs) and `.NAME.poolcli-HOST-
# PID.RANDOM.stageI.npy` (a tiled run's intermediate stages). The host and PID let a later
# run tell a live writer's file from a killed one's: a process id means something only on
# the host that wrote it, and a folder on a shared file system is written by the workers
# of a cluster on many hosts. (Names of older runs have no host: they count as this one's.)
LEFTOVER = re.compile(r"^\..+\.poolcli-(?:(?P<host>[A-Za-z0-9-]+)-)?(?P<pid>\d+)\.[^.]+\."
                      r"(part|stage\d+\.npy)$")


@functools.cache
def host_tag() -> str:
    """This host's name as it goes into temporary names: its first label, letters, digits
    and hyphens only."""
    import socket

    name = socket.gethostname().split(".")[0]
    return re.sub(r"[^A-Za-z0-9-]", "-", name)[:40].strip("-") or "host"

FileId = tuple[int, int]  # (st_dev, st_ino): a file whatever name it is reached by


def file_id(st: os.stat_result) -> FileId:
    return st.st_dev, st.st_ino


class OutputRefused(FileExistsError):
    """An output that must not be written: an input, a device, FIFO or symlink."""


def check_output(dst: str | os.PathLike, *, overwrite: bool = False,
                 protect: Collection[FileId] = ()) -> None:
    """Refuse ``dst`` unless it can become a regular file without harm.

    It may not exist (or exist as a regular file when ``overwrite``); it is never one of
    ``protect`` (inputs, the file standard input came from) nor inside one (a store),
    and never a device, FIFO, folder or symbolic link, which replacing would break.
    Raises FileExistsError (an existing file without ``overwrite``) or its subclass
    OutputRefused.
    """
    try:
        st = os.lstat(dst)
    except FileNotFoundError:
        _refuse_inside_input(Path(dst), protect)
        return
    if stat.S_ISLNK(st.st_mode):
        raise OutputRefused(f"output {dst} is a symbolic link; poolcli writes outputs only "
                            "as regular files (name the target itself)")
    if not stat.S_ISREG(st.st_mode):
        raise OutputRefused(f"output {dst} is {file_kind(st.st_mode)}, not a regular file; "
                            "outputs are written only as regular files (or output=- "
                            "for standard output)")
    if file_id(st) in protect:
        raise OutputRefused(f"output {dst} is an input of this run; poolcli never writes "
                            "over an input")
    _refuse_inside_input(Path(dst), protect)
    if not overwrite:
        raise FileExistsError(f"{dst} exists; pass overwrite=True to replace it")


def check_store_output(dst: str | os.PathLike, *, overwrite: bool = False,
                       protect: Collection[FileId] = ()) -> None:
    """Refuse ``dst`` unless it can become a store (a folder, e.g. ``out.zarr``) without harm.

    The rules of ``check_output`` for a folder that is replaced whole: never a symbolic
    link, device or FIFO; never one of ``protect``, nor inside one (a store nested in an
    input store), nor holding one (replacing it would delete the input); an existing
    ``dst`` only with ``overwrite``. Identity is ``file_id``, whatever name reaches it.
    """
    dst = Path(dst)
    try:
        st = os.lstat(dst)
    except FileNotFoundError:
        st = None
    if st is not None:
        if stat.S_ISLNK(st.st_mode):
            raise OutputRefused(f"output {dst} is a symbolic link; poolcli writes a store "
                                "only as a folder of its own (name the target itself)")
        if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
            raise OutputRefused(f"output {dst} is {file_kind(st.st_mode)}; a store is "
                                "written only as a folder")
        if file_id(st) in protect:
            raise OutputRefused(f"output {dst} is an input of this run; poolcli never "
                                "writes over an input")
    _refuse_inside_input(dst, protect)
    if st is None:
        return
    if not overwrite:
        raise FileExistsError(f"{dst} exists; pass overwrite=True to replace it")
    held = _held_input(dst, protect) if stat.S_ISDIR(st.st_mode) else None
    if held is not None:
        raise OutputRefused(f"output {dst} holds {held}, an input of this run; replacing "
                            "it would delete the input")


def _refuse_inside_input(dst: Path, protect: Collection[FileId]) -> None:
    """OutputRefused when a folder holding ``dst`` (as the file system reaches it, through
    any symbolic links) is one of ``protect``: an output never goes inside an input."""
    if not protect:
        return
    folder = Path(os.path.realpath(Path(dst).parent))
    for d in (folder, *folder.parents):
        try:
            held = file_id(os.stat(d)) in protect
        except OSError:
            continue
        if held:
            raise OutputRefused(f"output {dst} would be inside {d}, an input of this run; "
                                "poolcli never writes into an input")


def _held_input(folder: Path, protect: Collection[FileId]) -> Path | None:
    """The first of ``protect`` found inside ``folder`` (symbolic links not followed, as
    removing the folder would not follow them), or None."""
    inodes = {ino for _, ino in protect}
    stack = [folder]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for e in entries:
            try:
                if e.inode() in inodes and file_id(e.stat(follow_symlinks=False)) in protect:
                    return Path(e.path)
                if e.is_dir(follow_symlinks=False):
                    stack.append(Path(e.path))
            except OSError:
                continue
    return None


@contextmanager
def temp_beside(dst: Path, suffix: str = ".part") -> Iterator[tuple[int, Path]]:
    """A new temporary file beside ``dst`` (fd, path), removed on any error.

    Its name carries this host's name and this process's id (see ``LEFTOVER``). An error
    creating it names ``dst``, the file the user asked for, not the temporary name.
    """
    try:
        fd, name = tempfile.mkstemp(prefix=f".{dst.name}.poolcli-{host_tag()}-{os.getpid()}.",
                                    suffix=suffix, dir=dst.parent)
    except OSError as e:
        raise type(e)(e.errno, e.strerror, str(dst)) from None
    tmp = Path(name)
    try:
        yield fd, tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(dst: str | os.PathLike, write: Callable[[BinaryIO], None], *,
                 overwrite: bool = False, protect: Collection[FileId] = (),
                 same_ok: bool = False) -> None:
    """Call ``write`` on a temporary file beside ``dst``, then move it into place.

    ``dst`` is checked first (``check_output``): never a device, FIFO, symlink or one of
    ``protect``; without ``overwrite`` an existing ``dst`` raises FileExistsError, checked
    again at the moment of linking, so a file that appeared meanwhile is not replaced
    either; with ``same_ok`` an existing ``dst`` that holds exactly the bytes written is
    no conflict (a retried task finding its own output). On any error or interruption
    the temporary file is removed and ``dst`` is untouched. OSErrors name ``dst``, never
    the temporary file.
    """
    dst = Path(dst)
    check_output(dst, overwrite=overwrite or same_ok, protect=protect)
    with temp_beside(dst) as (fd, tmp):
        os.fchmod(fd, 0o666 & ~_UMASK)
        try:
            with os.fdopen(fd, "wb") as f:
                write(f)
        except OSError as e:
            if e.filename is None or str(tmp) == str(e.filename):
                # NumPy reports a full disk as a short write with no errno; the system's
                # words are recovered from the file system, so a batch can count them
                errno_, words = e.errno, e.strerror
                if errno_ is None:
                    errno_, words = _why_short(tmp, str(e))
                raise OSError(errno_, words, str(dst)) from None
            raise
        # the destination may have changed while we wrote: check it again
        check_output(dst, overwrite=True, protect=protect)
        if overwrite:
            os.replace(tmp, dst)
        else:
            try:
                os.link(tmp, dst)
            except FileExistsError:
                if not (same_ok and filecmp.cmp(tmp, dst, shallow=False)):
                    raise FileExistsError(f"{dst} exists; pass overwrite=True to replace "
                                          "it") from None
            tmp.unlink()


def _why_short(tmp: Path, text: str) -> tuple[int | None, str]:
    """(errno, words) for a write that stopped short: a full disk, or the message as is."""
    import errno

    try:
        st = os.statvfs(tmp.parent)
        if st.f_bavail == 0:
            return errno.ENOSPC, os.strerror(errno.ENOSPC)
    except OSError:
        pass
    return None, text


def remove_leftovers(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files of poolcli runs that were killed, in ``folder``.

    Only names this module makes (``LEFTOVER``) on this host whose process is gone are
    removed; a running poolcli's files, and those another host's process writes into a
    shared folder, are left alone. Returns the files removed.
    """
    here = host_tag()
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for e in entries:
        m = LEFTOVER.match(e.name)
        if m is None or m["host"] not in (None, here) or _alive(int(m["pid"])):
            continue
        try:
            if e.is_file(follow_symlinks=False):
                os.unlink(e.path)
                removed.append(Path(e.path))
        except OSError:
            pass  # someone else's file, or gone already
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # another user's process, or a name we cannot judge: keep it
    return True
