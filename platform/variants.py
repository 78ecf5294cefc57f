"""The report's variants of its pipeline, as method names: the pipeline with other config defaults.

`profiles.make_config` applies a variant's overrides between the profile and the user's own, so the
saved config (and every record) shows the settings the run used, `cfg.method` keeps the variant's name,
and an explicit `--set` still wins over the variant.
"""

from __future__ import annotations

from typing import Any

VARIANTS: dict[str, dict[str, Any]] = {
    "paper_focal": {"loss.main": "focal"},  # focal loss as the main loss (warm-up and refinement)
    "paper_swce_focal": {"refine.selection_loss": "swce_focal"},  # SWCE + focal as the selection score
    "paper_byol": {"pretrain.method": "byol"},  # BYOL instead of SimCLR pre-training
}


def variant_overrides(method: str) -> dict[str, Any]:
    """The dotted-path defaults of `method` (empty for a method that is no variant)."""
    return dict(VARIANTS.get(method, {}))
