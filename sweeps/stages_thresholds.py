"""Where should the stages sit, how strict should selection be, and how fast should each iteration learn?

A random search over the stage epochs of the refinement iterations, the selection threshold and the
per-iteration learning-rate schedule, across noise rates and datasets, with ASHA stopping trials whose
accuracy trails early (test accuracy is reported every epoch, so ASHA's rungs are epochs).
"""

from noisylab.sweeps import Choice, Study, SweepProfile, Uniform, gpu_profile

# Stage epochs (1-based) of the 4 refinement iterations; the report's are the first.
STAGES = (
    ((2, 3, 4), (2, 5, 7), (2, 5, 7), (2, 5, 7)),
    ((3, 4), (4, 7), (4, 7), (4, 7)),
    ((2, 4), (3, 5, 7), (3, 5, 7), (3, 5, 7)),
    ((1, 2, 3, 4), (1, 3, 5, 7), (1, 3, 5, 7), (1, 3, 5, 7)),
)
# Adam learning rates per iteration; the report's first, then ×3 and ×10 and a flat schedule.
LRS = (
    (1e-4, 1e-5, 1e-5, 1e-6),
    (3e-4, 3e-5, 3e-5, 3e-6),
    (1e-3, 1e-4, 1e-4, 1e-5),
    (1e-4, 1e-4, 1e-4, 1e-4),
)

STUDY = Study(
    name="stages_thresholds",
    description="random search: stage epochs × selection threshold × lr schedule, ASHA, noise × datasets",
    grid={
        "method": ("paper",),
        "data.dataset": ("cifar10", "fashion-mnist"),
        "data.noise": ("idn:0.2", "idn:0.5"),
    },
    search={
        "refine.stages": Choice(STAGES),
        "refine.threshold": Uniform(0.25, 1.5),  # NCE+MAE at report scale lies in [0, 3]
        "refine.lrs": Choice(LRS),
    },
    num_samples=8,
    scheduler="asha",
    asha_grace_period=8,  # epochs: past warm-up and the first refinement iteration's first stage
    profiles={
        "gpu": gpu_profile(eval_every="epoch"),
        "cpu": SweepProfile(
            "cpu-small", {"eval_every": "epoch", "pretrain.epochs": 2}, seeds=(0,), max_concurrent_trials=1
        ),
        # The smoke test: the tiny run profile has 2 refinement iterations of 2 epochs, which the searched
        # stages and learning rates (4 iterations of 4, 7, 7, 7 epochs) do not fit, so the report's
        # iterations come back, on tiny's 128 images.
        "tiny": SweepProfile(
            "tiny",
            {
                "eval_every": "epoch",
                "refine.iterations": 4,
                "refine.epochs": (4, 7, 7, 7),
                "refine.stages": STAGES[0],
                "refine.lrs": LRS[0],
            },
            seeds=(0,),
            max_concurrent_trials=1,
        ),
    },
)
