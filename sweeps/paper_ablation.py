"""What in the report's pipeline moves accuracy, at one budget: Fashion-MNIST under IDN 30 % and 50 %,
three seeds, every arm on the same data, backbone, optimiser and supervised epochs (the `cpu-ablation`
profile: 700 training images, ResNet-18 at width 8, 50 SimCLR epochs, 30 supervised epochs).

Arms: the baselines (`ce`, `dividemix`, `c2d`); the pipeline on one network (`paper`) and with one
component taken out or swapped (`paper_no_simclr`, `paper_ce`, `paper_no_copies`, `paper_apl` for the
other reading of its MAE); the pipeline on DivideMix (`paper_dividemix`, `paper_dividemix_ce`); and two
remedies for SWCE starving slow classes (`paper_classnorm`, `paper_cewarmup`). Each arm is a method
name, so `noisylab run --method ARM` reproduces one cell.

Heavy arms come first so the two trial slots stay busy to the end; the pipeline's arms follow one
another so each seed's SimCLR pre-training is computed once and reused (runtime.PretrainCache).
"""

from noisylab.sweeps import Study, SweepProfile, gpu_profile

ARMS = (
    "ce",
    "dividemix",
    "c2d",
    "paper_dividemix",
    "paper_dividemix_ce",
    "paper",
    "paper_apl",
    "paper_no_simclr",
    "paper_ce",
    "paper_no_copies",
    "paper_classnorm",
    "paper_cewarmup",
)

STUDY = Study(
    name="paper_ablation",
    description="Fashion-MNIST × IDN 30/50 % × the pipeline's components, DivideMix and C2D, three seeds",
    grid={
        "method": ARMS,
        "data.dataset": ("fashion-mnist",),
        "data.noise": ("idn:0.3", "idn:0.5"),
    },
    profiles={
        "cpu": SweepProfile("cpu-ablation", seeds=(0, 1, 2), max_concurrent_trials=2),
        "gpu": gpu_profile(),
    },
)
