"""Variants of the report's pipeline, as method names: a base method with other config defaults.

`profiles.make_config` applies a variant's overrides between the profile and the user's own, so the
saved config (and every record) shows the settings the run used, `cfg.method` keeps the variant's name,
and an explicit `--set` still wins over the variant.

Three kinds, each named in its description: the report's own variants (focal, SWCE + focal, BYOL), the
arms of the `paper_ablation` study (one component of the pipeline changed, so `noisylab run --method X`
reproduces a row of that table), and this platform's own remedies for SWCE starving slow classes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Variant:
    base: str  # the method whose trainable runs it: "paper" or "paper_dividemix"
    description: str
    overrides: dict[str, Any] = field(default_factory=dict)


VARIANTS: dict[str, Variant] = {
    # ---- the report's variants (Tables IV–V, section V) ----
    "paper_focal": Variant("paper", "the report's: focal loss as the main loss", {"loss.main": "focal"}),
    "paper_swce_focal": Variant(
        "paper", "the report's: SWCE + focal as the selection score", {"refine.selection_loss": "swce_focal"}
    ),
    "paper_byol": Variant("paper", "the report's: BYOL instead of SimCLR", {"pretrain.method": "byol"}),
    # ---- the other reading of the report's NCE+MAE ----
    "paper_apl": Variant(
        "paper",
        "NCE+MAE on the Active-Passive-Losses code's scale, MAE = 1 − p_y (the report writes Σ|p − q|)",
        {"refine.mae_scale": "apl"},
    ),
    # ---- ablation arms: one component of the pipeline taken out or swapped ----
    "paper_no_simclr": Variant("paper", "ablation: no pre-training", {"pretrain.method": "none"}),
    "paper_ce": Variant("paper", "ablation: cross entropy as the main loss", {"loss.main": "ce"}),
    "paper_no_copies": Variant(
        "paper", "ablation: no augmented copies of pseudo-labelled samples", {"refine.copies": 0}
    ),
    "paper_dividemix_ce": Variant(
        "paper_dividemix", "ablation: DivideMix's plain labelled loss", {"paper_dividemix.loss": "ce"}
    ),
    # ---- this platform's remedies for SWCE's starvation of slow classes (not the report's) ----
    "paper_classnorm": Variant(
        "paper", "remedy: SWCE weights normalised within each class of the batch", {"loss.swce_norm": "class"}
    ),
    "paper_cewarmup": Variant("paper", "remedy: cross-entropy warm-up before SWCE", {"warmup.loss": "ce"}),
}


def variant_overrides(method: str) -> dict[str, Any]:
    """The dotted-path defaults of `method` (empty for a method that is no variant)."""
    variant = VARIANTS.get(method)
    return dict(variant.overrides) if variant is not None else {}


def base_method(method: str) -> str:
    """The trainable a method name runs: a variant's base, else the name itself."""
    variant = VARIANTS.get(method)
    return variant.base if variant is not None else method
