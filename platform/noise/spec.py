"""What noise to apply (`NoiseSpec`, parsed from text such as ``idn:0.3``) and what applying it gives
(`NoisyLabels`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import numpy as np

from noisylab.errors import UserError
from noisylab.noise.checks import EXAMPLES, check_rate

NoiseKind = Literal["none", "idn", "symmetric", "pair", "file"]

_KINDS: tuple[str, ...] = get_args(NoiseKind)
# Text aliases accepted by `NoiseSpec.parse`; the first spelling of each kind is the canonical one.
_ALIASES: dict[str, NoiseKind] = {
    "none": "none",
    "idn": "idn",
    "sym": "symmetric",
    "symmetric": "symmetric",
    "pair": "pair",
    "file": "file",
}
_CANONICAL: dict[NoiseKind, str] = {"none": "none", "idn": "idn", "symmetric": "sym", "pair": "pair"}


@dataclass(frozen=True)
class NoiseSpec:
    """What label noise to apply: a kind, a target flip rate, and for ``file`` where to read labels."""

    kind: NoiseKind
    rate: float = 0.0  # target flip rate in [0, 1); ignored for none/file
    path: Path | None = None  # kind == "file"
    key: str | None = None  # kind == "file": key inside a .pt file (e.g. CIFAR-10N "worse_label")

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise UserError(f"unknown noise kind {self.kind!r}: {EXAMPLES}")
        check_rate(float(self.rate))
        # Normalise types (frozen, hence object.__setattr__) so equal specs compare and hash equal.
        object.__setattr__(self, "rate", float(self.rate))
        if self.path is not None:
            object.__setattr__(self, "path", Path(self.path))
        if self.kind == "file" and self.path is None:
            raise UserError("noise kind 'file' needs a path: use e.g. file:CIFAR-10_human.pt#worse_label")
        if self.kind != "file" and (self.path is not None or self.key is not None):
            raise UserError(f"noise kind {self.kind!r} takes no file path or key: use file:PATH[#KEY]")
        if self.key is not None and not self.key:
            raise UserError("the key after '#' is empty: use e.g. file:CIFAR-10_human.pt#worse_label")

    @classmethod
    def parse(cls, text: str) -> NoiseSpec:
        """Parse ``idn:0.3``, ``sym:0.2``/``symmetric:0.2``, ``pair:0.4``, ``none``,
        ``file:/p/CIFAR-10_human.pt#worse_label`` or ``file:labels.npy``."""
        text = text.strip()
        name, sep, rest = text.partition(":")
        kind = _ALIASES.get(name.strip().lower())
        if kind is None:
            raise UserError(f"unknown noise kind {name!r} in {text!r}: {EXAMPLES}")
        if kind == "none":
            if sep:
                raise UserError(f"noise 'none' takes no argument, got {text!r}: write just none")
            return cls("none")
        if kind == "file":
            return cls._parse_file(text, rest)
        if not rest.strip():
            raise UserError(f"noise {text!r} has no rate: write e.g. {name}:0.3")
        try:
            rate = float(rest)
        except ValueError:
            raise UserError(f"noise rate {rest!r} in {text!r} is not a number: {EXAMPLES}") from None
        return cls(kind, rate=rate)

    @classmethod
    def _parse_file(cls, text: str, rest: str) -> NoiseSpec:
        # The last '#' separates the key, so a directory name containing '#' still works when a key is given.
        path_text, sep, key = rest.rpartition("#") if "#" in rest else (rest, "", "")
        if not path_text.strip():
            raise UserError(f"noise {text!r} has no file path: use e.g. file:CIFAR-10_human.pt#worse_label")
        return cls("file", path=Path(path_text.strip()), key=key.strip() if sep else None)

    def label(self) -> str:
        """Canonical short text, e.g. ``idn:0.3``; `NoiseSpec.parse` turns it back into an equal spec."""
        if self.kind == "none":
            return "none"
        if self.kind == "file":
            suffix = f"#{self.key}" if self.key is not None else ""
            return f"file:{self.path}{suffix}"
        # repr() is the shortest text that reads back as the same float, so the label round-trips exactly.
        return f"{_CANONICAL[self.kind]}:{float(self.rate)!r}"


@dataclass(frozen=True)
class NoisyLabels:
    """Noisy labels and how far they are from the clean ones."""

    labels: np.ndarray  # int64 [N], the noisy labels
    realised_rate: float  # fraction of labels != clean labels
    transition: np.ndarray  # float64 [C, C], row i = empirical P(noisy = j | clean = i); absent classes: 0
