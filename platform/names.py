"""Names that become folders (`--name`, a study's name) must stay inside their store.

A name is one path component: no separator, no `..`/`.`, nothing empty, no NUL. `../x` would write
beside the store, `/abs/path` anywhere (pathlib's `/` drops the left side before an absolute path). No
control character either: a newline or tab makes a folder that listings, logs and shells show wrongly.
"""

from __future__ import annotations

from noisylab.errors import UserError


def check_component(name: str, what: str) -> str:
    """`name` unchanged if it is a single path component; else one line saying what to pass."""
    bad = (
        not name
        or name in (".", "..")
        or any(sep in name for sep in ("/", "\\"))
        or any(ord(c) < 32 or ord(c) == 127 for c in name)  # NUL, newline, tab, escape...
        or name != name.strip()
    )
    if bad:
        raise UserError(
            f"{what} {name!r} is not a plain name: use letters, digits, '-', '_' or '.', without '/', "
            "'\\', '..', control characters or spaces at its ends (it names a folder inside the store)"
        )
    return name
