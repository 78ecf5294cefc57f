"""The report's Table II: the pipeline against the methods it competes with, on CIFAR-10 and CIFAR-100
under instance-dependent noise (Xia et al. 2020) at 20, 30 and 50 %, ResNet-18, test accuracy."""

from noisylab.sweeps import Study, cpu_profile, gpu_profile

STUDY = Study(
    name="paper_table2",
    description="Table II: CIFAR-10/100 × IDN 20/30/50 % × the pipeline and its baselines, ResNet-18",
    grid={
        "method": ("paper", "ce", "mixup", "forward", "coteaching", "dividemix"),
        "data.dataset": ("cifar10", "cifar100"),
        "data.noise": ("idn:0.2", "idn:0.3", "idn:0.5"),
        "model.name": ("resnet18",),
    },
    profiles={"gpu": gpu_profile(), "cpu": cpu_profile()},
)
