"""What the section modules share: reading the run's noise, the checks' one-line refusals, and reading
a field that `resolve` has filled in."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from noisylab.errors import UserError

if TYPE_CHECKING:
    from noisylab.config.run import RunConfig
    from noisylab.noise import NoiseSpec

T = TypeVar("T")


def noise(cfg: RunConfig) -> NoiseSpec | None:
    """The run's noise as parsed, or None when its text does not parse: `resolve` then leaves the fields
    that depend on it unset, and `config.validate` names the bad text."""
    from noisylab.noise import NoiseSpec  # numpy: imported when a rule needs it, not with the config

    try:
        return NoiseSpec.parse(cfg.data.noise)
    except UserError:
        return None


def nominal_rate(cfg: RunConfig) -> float | None:
    """The noise rate the spec asks for (0 for `none`), None for label files (no rate before the run) and
    for noise text that does not parse. The nominal rate, not the realised one: a rule must give the same
    value before the labels exist as after."""
    spec = noise(cfg)
    return None if spec is None or spec.kind == "file" else spec.rate


def positive(name: str, value: int, *, minimum: int) -> None:
    if value < minimum:
        raise UserError(f"{name} must be ≥ {minimum}, got {value}")


def used(value: T | None, path: str) -> T:
    """The value of a None-means-default field that the run's method reads. None here means the config
    skipped `config.resolve` or the method is missing from the section's line in `SECTIONS`: a bug in
    noisylab, not a user error."""
    if value is None:
        raise RuntimeError(
            f"config field '{path}' was never resolved: build configs with profiles.make_config or "
            "config.validate, and list the method in its section's line of noisylab.config.sections.SECTIONS"
        )
    return value


def simclr_encoder_only(cfg: RunConfig) -> None:
    """c2d and paper_dividemix load ONE SimCLR encoder into both networks (`twins.pretrain_shared_encoder`);
    BYOL's target network has no place there."""
    if cfg.pretrain.method == "byol":
        raise UserError(
            f"{cfg.method} loads one SimCLR encoder into both networks: pretrain.method must be "
            "simclr or none, not byol"
        )
