"""Open an input file only if it is a regular file: a FIFO or device would block or never end."""

from __future__ import annotations

import os
import stat
from typing import BinaryIO


class NotAFile(OSError):
    """An input that is not a regular file (a FIFO, device, socket or folder)."""


def open_regular(path: str | os.PathLike) -> BinaryIO:
    """``open(path, "rb")`` for a regular file; NotAFile for anything else, without waiting.

    Opening a FIFO for reading blocks until a writer appears, so the file is opened
    non-blocking, checked, and only then read. A FIFO's data can be piped into standard
    input (``-``) instead, which is read once, as a stream.
    """
    # The file object owns the descriptor from the start: an interruption anywhere here
    # closes it exactly once (a second close could hit another file's reused number).
    f = open(path, "rb", opener=_nonblocking)  # noqa: SIM115 - returned, or closed below
    try:
        mode = os.fstat(f.fileno()).st_mode
        if not stat.S_ISREG(mode):
            raise NotAFile(f"{file_kind(mode)}, not a regular file; pipe it into standard "
                           "input (-) to read it as a stream")
        os.set_blocking(f.fileno(), True)
    except BaseException:
        f.close()
        raise
    return f


def _nonblocking(path: str, flags: int) -> int:
    return os.open(path, flags | getattr(os, "O_NONBLOCK", 0))


def file_kind(mode: int) -> str:
    """What a file that is not a regular one is, in words: "a FIFO (named pipe)", ..."""
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "a socket" if stat.S_ISSOCK(mode) else "a special file"
