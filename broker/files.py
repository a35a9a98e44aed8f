"""Writing secrets safely: into folders only their owner can enter, never through a link.

The folders written may be shared with a less trusted process (compose hands each container's
folder to that container's user, and the root one-shot writes into it again at every start), so
nothing here follows a symbolic link someone planted: files are written under a fresh random name
(``mkstemp``: ``O_EXCL``), given their mode and owner through the open descriptor, then renamed
over the final name (a rename replaces a link, never its target).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from plantmodel.errors import ValidationError

Owner = tuple[int, int]  # uid, gid


def private_dir(path: Path, owner: Owner | None = None) -> None:
    """Create ``path`` (0700), or check it: a real folder (not a link), and if someone else's (an
    operator's ./certs), not one others may write to; then make it 0700 and hand it to ``owner``."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise ValidationError(f"{path} is a link or not a folder: refusing to write secrets through it")
    allowed = {os.geteuid(), *((owner[0],) if owner else ())}
    if st.st_uid not in allowed and st.st_mode & 0o022:
        raise ValidationError(f"{path} belongs to uid {st.st_uid} and others may write to it: refusing to "
                              "write secrets there")
    os.chmod(path, 0o700, follow_symlinks=False)
    if owner is not None:
        os.chown(path, *owner, follow_symlinks=False)


def write_private(path: Path, data: bytes, mode: int = 0o600, owner: Owner | None = None) -> None:
    """Replace ``path`` by ``data`` atomically, with ``mode`` and ``owner`` set before it appears."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fchmod(fh.fileno(), mode)
            if owner is not None:
                os.fchown(fh.fileno(), *owner)
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
