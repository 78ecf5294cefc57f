"""A study that runs on a 2-core laptop in minutes: the pipeline against cross-entropy on Fashion-MNIST
(the one real dataset on this kind of machine) under IDN 30 %, two seeds, the `cpu-small` profile."""

from noisylab.sweeps import Study, SweepProfile, gpu_profile

STUDY = Study(
    name="fmnist_cpu",
    description="Fashion-MNIST, IDN 30 %: pipeline vs CE, two seeds, in minutes on a CPU",
    grid={
        "method": ("paper", "ce"),
        "data.dataset": ("fashion-mnist",),
        "data.noise": ("idn:0.3",),
    },
    profiles={
        # Two one-CPU trials at once: one trial's Ray start-up overlaps the other's training.
        "cpu": SweepProfile("cpu-small", seeds=(0, 1), max_concurrent_trials=2),
        "gpu": gpu_profile(),
    },
)
