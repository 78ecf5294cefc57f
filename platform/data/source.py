"""Which data a run used: the absolute path it was read from, a content fingerprint, and a name.

Formats with a fixed name (fashion-mnist, cifar10, ...) are named after it; a user's `.npz` file or
image folder is named by `data.name` when given, else by the file's stem or the folder's name, so two
different archives land in two report columns.

The fingerprint is cheap on purpose (it runs before every run): for a file, SHA-256 of its size, its
modification time and its first and last MiB (the whole file when it is at most 2 MiB); for a folder,
SHA-256 of every file's relative path, size and modification time (no file is read). It changes when a
file is replaced or edited; a byte changed in the middle of a large file with its mtime restored would
go unnoticed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

MIB = 1024 * 1024
NAMED_BY_SOURCE = ("npz", "imagefolder")  # formats whose files say nothing about what they hold


@dataclass(frozen=True)
class DataSource:
    name: str  # how reports name the dataset
    root: str  # absolute path of the file or folder read
    fingerprint: str  # 16 hex digits (see the module's note)


def file_fingerprint(path: Path) -> str:
    st = path.stat()
    h = hashlib.sha256(f"file {st.st_size} {st.st_mtime_ns}".encode())
    with open(path, "rb") as f:
        if st.st_size <= 2 * MIB:
            h.update(f.read())
        else:
            h.update(f.read(MIB))
            f.seek(-MIB, 2)
            h.update(f.read(MIB))
    return h.hexdigest()[:16]


def folder_fingerprint(path: Path) -> str:
    h = hashlib.sha256(b"folder")
    for p in sorted(q for q in path.rglob("*") if q.is_file()):
        st = p.stat()
        h.update(f"{p.relative_to(path).as_posix()} {st.st_size} {st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def describe_source(fmt: str, path: Path, name: str | None = None) -> DataSource:
    """`path`: the file or folder the loader read (resolved here)."""
    path = path.resolve()
    fingerprint = file_fingerprint(path) if path.is_file() else folder_fingerprint(path)
    if name is None:
        name = (path.stem if path.is_file() else path.name) if fmt in NAMED_BY_SOURCE else fmt
    return DataSource(name=name, root=str(path), fingerprint=fingerprint)
