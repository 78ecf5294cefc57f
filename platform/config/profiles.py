"""Named run profiles: the report's full recipe for a GPU, and smaller ones that keep every phase.

A profile is a set of config overrides applied before the user's own; the profile's name is
stored in the config and so in every result record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from noisylab.config.run import RunConfig, resolve, with_overrides
from noisylab.config.variants import variant_overrides
from noisylab.errors import UserError


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    overrides: dict[str, Any] = field(default_factory=dict)


PROFILES: dict[str, Profile] = {
    "gpu": Profile(
        "gpu",
        "the report's full recipe: whole dataset, ResNet-18, 30 SimCLR epochs; bf16 autocast and "
        "channels-last batches (tensor cores)",
        {"precision": "bf16", "model.channels_last": True},
    ),
    "cpu": Profile(
        "cpu",
        "a 2-core CPU in minutes: 4,000 training / 2,000 test images (class-balanced), ResNet-18 at width 8, "
        "15 SimCLR epochs, batch 128; warm-up and all 4 refinement iterations with the report's epochs and "
        "stages, learning rates ×10 (a 4,000-image epoch has 1/12 of CIFAR's steps)",
        {
            # With the report's 1e-4 a 5-epoch warm-up on 4,000 images takes ~160 steps and reaches ~30 %
            # test accuracy on Fashion-MNIST (IDN 30 %); ×10 gives the short schedule room to learn.
            "warmup.lr": 1e-3,
            "refine.lrs": (1e-3, 1e-4, 1e-4, 1e-5),
            "data.train_subset": 4000,
            "data.test_subset": 2000,
            "model.width": 8,
            "pretrain.epochs": 15,
            "batch_size": 128,
            "eval_every": "phase",
        },
    ),
    "cpu-small": Profile(
        "cpu-small",
        "studies of many runs on a 2-core CPU: 1,500 training / 1,000 test images (class-balanced), "
        "ResNet-18 "
        "at width 8, 5 SimCLR epochs, batch 128; warm-up and all 4 refinement iterations with the report's "
        "epochs and stages (30 supervised epochs, also every baseline's budget), learning rates ×10",
        {
            "warmup.lr": 1e-3,
            "refine.lrs": (1e-3, 1e-4, 1e-4, 1e-5),
            "data.train_subset": 1500,
            "data.test_subset": 1000,
            "model.width": 8,
            "pretrain.epochs": 5,
            "batch_size": 128,
            "eval_every": "phase",
        },
    ),
    "cpu-ablation": Profile(
        "cpu-ablation",
        "the paper_ablation study on a 2-core CPU: 700 training / 1,000 test images (class-balanced), "
        "ResNet-18 at width 8, 50 SimCLR epochs (shared by every run of a seed through the pre-training "
        "cache), batch 128; warm-up and all 4 refinement iterations with the report's epochs and stages "
        "(30 supervised epochs, also every baseline's budget), learning rates ×10",
        {
            "warmup.lr": 1e-3,
            "refine.lrs": (1e-3, 1e-4, 1e-4, 1e-5),
            "data.train_subset": 700,
            "data.test_subset": 1000,
            "model.width": 8,
            "pretrain.epochs": 50,
            "batch_size": 128,
            "eval_every": "phase",
        },
    ),
    "cpu-memorise": Profile(
        "cpu-memorise",
        "comparisons where noisy labels hurt, on a 2-core CPU: 1,000 training / 1,000 test images "
        "(class-balanced), PreAct ResNet-18 at width 16, flips only, batch 64, 20 SimCLR epochs; warm-up "
        "and all 4 refinement iterations with the report's epochs and stages (30 supervised epochs, also "
        "every baseline's budget), learning rates ×10, DivideMix warm-up 5 epochs, test set every epoch",
        {
            # Measured (BENCHMARKS.md, "A budget where noise hurts"): with random crops CE on 1,000 images
            # under IDN 50 % is still at training loss ≈ 0.8 after 67 epochs; with flips only it fits the
            # noisy labels (loss < 0.3) by epoch ~11 of 30 and test accuracy falls from its peak, the
            # regime robust methods exist for. Xia et al. 2020's own Fashion-MNIST code augments nothing.
            "data.train_subset": 1000,
            "data.test_subset": 1000,
            "data.crop_padding": 0,
            "model.width": 16,
            "pretrain.epochs": 20,
            "warmup.lr": 1e-3,
            "refine.lrs": (1e-3, 1e-4, 1e-4, 1e-5),
            "batch_size": 64,
            # DivideMix's own 10 epochs (CIFAR-10, of 300) would end after CE has fitted most of the noise
            # here (training loss 0.35 at epoch 10); 5 is C2D's warm-up, before the fit (loss ≈ 1.0).
            "dividemix.warmup_epochs": 5,
            # Every epoch is evaluated, so a record's last-10 mean and best epoch (results.curve_summary)
            # are measured, not guessed from phase ends.
            "eval_every": "epoch",
        },
    ),
    "tiny": Profile(
        "tiny",
        "a smoke test in seconds: 128 images, width 4, 1 epoch per phase, 2 short refinement iterations",
        {
            "data.train_subset": 128,
            "data.test_subset": 64,
            "model.width": 4,
            "pretrain.epochs": 1,
            "warmup.epochs": 1,
            "refine.iterations": 2,
            "refine.epochs": (2, 2),
            "refine.stages": ((1, 2), (1, 2)),
            "refine.lrs": (1e-3, 1e-4),
            "baseline.epochs": 2,
            "c2d.warmup_epochs": 1,
            "batch_size": 32,
            "eval_every": "phase",
        },
    ),
}


# The profile of the report's recipe: published numbers were made with it on the whole training set, so
# only such runs are set against them as a gap (`report.vs_paper`); any other budget is shown beside them.
PUBLISHED_SCALE = "gpu"


def at_published_scale(profile: str | None, train_subset: int | None) -> bool:
    """Whether a run of `profile` on `train_subset` images (None: all) is at the published numbers' scale."""
    return profile == PUBLISHED_SCALE and train_subset is None


# A user's own data (an .npz, a tree of class folders) comes with the labels someone gave it: those are
# the noisy labels to learn from, so no synthetic noise is added unless it is asked for. The benchmark
# sets (Fashion-MNIST, CIFAR, the medical sets) are clean, and the report adds IDN noise to them.
OWN_DATA = ("npz", "imagefolder")
OWN_DATA_NOISE = "none"


def own_data_noise(overrides: dict[str, Any]) -> bool:
    """True when `overrides` train on the user's own data and say nothing about its noise."""
    dataset = str(overrides.get("data.dataset", "")).strip().lower()
    return dataset in OWN_DATA and "data.noise" not in overrides


def make_config(profile: str, overrides: dict[str, Any] | None = None) -> RunConfig:
    """RunConfig = defaults ← profile ← the method's variant defaults ← user overrides (dotted paths),
    resolved (`config.resolve`: the method's None-means-default fields hold the values the run will use).
    The user's own data (`OWN_DATA`) gets no synthetic noise unless `data.noise` is among the overrides.
    Not yet validated."""
    if profile not in PROFILES:
        raise UserError(f"unknown profile '{profile}': choose one of {', '.join(PROFILES)}")
    overrides = overrides or {}
    if own_data_noise(overrides):
        overrides = overrides | {"data.noise": OWN_DATA_NOISE}
    cfg = with_overrides(RunConfig(profile=profile), PROFILES[profile].overrides)
    method = str(overrides.get("method", cfg.method))
    cfg = with_overrides(cfg, variant_overrides(method))  # e.g. paper_byol: pretrain.method=byol
    return resolve(with_overrides(cfg, overrides))
