"""The report's Table II: the pipeline against the methods it competes with, on CIFAR-10 and CIFAR-100
under instance-dependent noise (Xia et al. 2020) at 20, 30 and 50 %, ResNet-18, test accuracy.

The report's "Our Method" row is the pipeline on top of DivideMix (`paper_dividemix`); `paper` (the
pipeline on one network) and `c2d` (SimCLR initialisation of DivideMix alone) tell its parts apart.
`mentornet` is Table II's MentorNet row run here (MentorNet-PD); `selfie` is the selective refurbishment the
report cites for its consensus step; `lsl` is a reconstruction (no official code is public; see
trainables/lsl.py)."""

from noisylab.sweeps import Study, cpu_profile, gpu_profile

STUDY = Study(
    name="paper_table2",
    description="Table II: CIFAR-10/100 × IDN 20/30/50 % × the pipeline on DivideMix and its baselines",
    grid={
        "method": (
            "paper_dividemix",
            "paper",
            "c2d",
            "ce",
            "mixup",
            "forward",
            "reweight",
            "coteaching",
            "decoupling",
            "dividemix",
            "mentornet",
            "selfie",
            "lsl",
        ),
        "data.dataset": ("cifar10", "cifar100"),
        "data.noise": ("idn:0.2", "idn:0.3", "idn:0.5"),
        "model.name": ("resnet18",),
    },
    profiles={"gpu": gpu_profile(), "cpu": cpu_profile()},
)
