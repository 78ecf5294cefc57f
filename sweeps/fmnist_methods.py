"""Every method side by side on Fashion-MNIST under IDN 20/30/50 %: the same data, noise, backbone,
optimiser and epoch budget (the `cpu-small` profile), two seeds; sized to finish on a 2-core CPU in
about an hour. Published anchors (Yao et al. 2021, full data, 150 epochs): `noisylab report --vs-paper`."""

from noisylab.sweeps import Study, SweepProfile, gpu_profile

METHODS = (
    "ce",
    "swce",
    "focal",
    "nce_mae",
    "mixup",
    "forward",
    "reweight",
    "coteaching",
    "decoupling",
    "dividemix",
    "mentornet",
    "selfie",
    "lsl",
    "paper",
    "paper_focal",
    "paper_swce_focal",
    "paper_byol",
)

STUDY = Study(
    name="fmnist_methods",
    description="Fashion-MNIST × IDN 20/30/50 % × every method, same budget, two seeds",
    grid={
        "method": METHODS,
        "data.dataset": ("fashion-mnist",),
        "data.noise": ("idn:0.2", "idn:0.3", "idn:0.5"),
    },
    profiles={
        # Two one-CPU trials at once (Ray gives each worker one intra-op thread): at width 8 a second thread
        # gains little, and one trial's Ray start-up overlaps the other's training.
        "cpu": SweepProfile("cpu-small", seeds=(0, 1), max_concurrent_trials=2),
        "gpu": gpu_profile(),
    },
)
