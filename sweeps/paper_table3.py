"""The report's Table III: does a deeper backbone help? CIFAR-100 under IDN 20/30/50 %, the pipeline on
DivideMix (the report's method) and DivideMix, each with ResNet-18 and ResNet-34; the pipeline on one
network beside them."""

from noisylab.sweeps import Study, cpu_profile, gpu_profile

STUDY = Study(
    name="paper_table3",
    description="Table III: CIFAR-100 × IDN 20/30/50 % × ResNet-18/34 × the pipeline on DivideMix, DivideMix",
    grid={
        "method": ("paper_dividemix", "dividemix", "paper"),
        "data.dataset": ("cifar100",),
        "data.noise": ("idn:0.2", "idn:0.3", "idn:0.5"),
        "model.name": ("resnet18", "resnet34"),
    },
    profiles={"gpu": gpu_profile(), "cpu": cpu_profile()},
)
