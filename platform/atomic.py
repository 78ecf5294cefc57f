"""The one way noisylab writes a file: all of it or none of it, even across a crash or a full disk.

`atomic_write(path)` yields an open binary file under a unique temporary name in `path`'s folder
(`tempfile.mkstemp`, so two writers never share a temporary file); when the block ends the data is
flushed and fsynced, the file takes `path`'s name with `os.replace` (atomic on POSIX), and the folder is
fsynced so the new name survives a power cut. If anything fails the temporary file is removed and
`path` keeps its previous content. A disk that is full or read-only becomes one `UserError`.

`exclusive=True` claims `path` instead: the file is linked into place only if nothing exists there yet
(`os.link` fails with EEXIST), which is how two runs started together tell who owns a run folder.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from noisylab.errors import UserError

# Errors that a user fixes (space, permissions), not bugs: each becomes one line.
_USER_ERRNOS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EEXIST: "a part of the path is a file, not a folder",  # mkdir over a file
}


class AlreadyExists(Exception):
    """`atomic_write(..., exclusive=True)` found `path` taken."""


def storage_error(path: Path, exc: OSError) -> UserError:
    """One line for an OSError that the user can fix, naming the path."""
    reason = _USER_ERRNOS.get(exc.errno or 0, exc.strerror or str(exc))
    return UserError(f"cannot write {path}: {reason}; free space or choose a writable folder, then retry")


def is_user_os_error(exc: OSError) -> bool:
    return (exc.errno or 0) in _USER_ERRNOS


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_write(path: Path, *, exclusive: bool = False) -> Iterator[IO[bytes]]:
    """Yield a binary file whose content replaces (or, exclusive, claims) `path` when the block ends."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise _translate(path, e) from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if exclusive:
            try:
                os.link(tmp, path)  # fails if path exists: the first writer wins
            except FileExistsError:
                raise AlreadyExists(str(path)) from None
        else:
            os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as e:
        raise _translate(path, e) from None
    finally:
        tmp.unlink(missing_ok=True)


def _translate(path: Path, exc: OSError) -> Exception:
    return storage_error(path, exc) if is_user_os_error(exc) else exc


def set_aside(path: Path) -> Path | None:
    """Rename a damaged file to `<name>.bad` beside it (replacing an older one), so nothing reads it again
    and its bytes stay for a look; None when it is already gone (another process set it aside first)."""
    bad = path.with_name(path.name + ".bad")
    try:
        os.replace(path, bad)
        fsync_dir(path.parent)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise _translate(path, e) from None
    return bad


def write_bytes(path: Path, data: bytes, *, exclusive: bool = False) -> None:
    with atomic_write(path, exclusive=exclusive) as f:
        f.write(data)


def write_text(path: Path, text: str, *, exclusive: bool = False) -> None:
    write_bytes(path, text.encode("utf-8"), exclusive=exclusive)


def write_with(path: Path, writer: Callable[[IO[bytes]], object]) -> None:
    """`writer(file)` fills the file (torch.save, np.save, write_parquet all accept a file object)."""
    with atomic_write(path) as f:
        writer(f)
