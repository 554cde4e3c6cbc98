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
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotAFile(f"{_what(mode)}, not a regular file; pipe it into standard "
                           "input (-) to read it as a stream")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _what(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "a socket" if stat.S_ISSOCK(mode) else "a special file"
