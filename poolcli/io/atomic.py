"""Write a file all at once or not at all, and never replace one unless asked."""

from __future__ import annotations

import filecmp
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

# mkstemp makes 0600 files; an output should get the permissions any new file gets. The
# umask can only be read by setting it, so it is read once, at import.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def atomic_write(dst: str | os.PathLike, write: Callable[[BinaryIO], None], *,
                 overwrite: bool = False, same_ok: bool = False) -> None:
    """Call ``write`` on a temporary file beside ``dst``, then move it into place.

    Without ``overwrite`` an existing ``dst`` raises FileExistsError, checked again at the
    moment of linking, so a file that appeared meanwhile is not replaced either; with
    ``same_ok`` an existing ``dst`` that holds exactly the bytes written is no conflict
    (a retried task finding its own output). On any error or interruption the temporary
    file is removed and ``dst`` is untouched.
    """
    dst = Path(dst)
    if not overwrite and not same_ok and dst.exists():
        raise FileExistsError(f"{dst} exists; pass overwrite=True to replace it")
    fd, name = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".part", dir=dst.parent)
    tmp = Path(name)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as f:
            write(f)
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
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
