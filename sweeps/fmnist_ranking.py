"""The field's comparison at a budget where noisy labels hurt: Fashion-MNIST under IDN 30 % and 50 %,
three seeds, the `cpu-memorise` profile (1,000 training images, PreAct ResNet-18 at width 16, flips
only, 30 supervised epochs, the test set every epoch), where plain cross entropy fits the noisy labels
(training loss < 0.3) and its test accuracy falls from its peak: the regime noise-robust methods exist for.

Methods: the reference `ce`; the baselines the report's Table II ranks highest and that noisylab runs
(`coteaching`, `dividemix`, `c2d`, `selfie`, `lsl`); the report's pipeline on one network (`paper`, and
`paper_classnorm`, its remedy for SWCE starving slow classes) and on DivideMix (`paper_dividemix`, and
`paper_dividemix_ce`, the graft with a plain cross-entropy labelled loss). Compare on the mean over the
last 10 epochs (`noisylab report --metric acc_last10`): one epoch's accuracy swings by several points here.

Trials run in the grid's order (the six methods the comparison must keep first), two at once; the SimCLR
pre-training of each seed is computed once and reused by every later trial that starts from the same
encoder (runtime.PretrainCache).
"""

from noisylab.sweeps import Study, SweepProfile, gpu_profile

METHODS = (
    # the six the comparison must keep, first, so an interrupted study has them
    "ce",
    "coteaching",
    "dividemix",
    "c2d",
    "paper",
    "paper_dividemix",
    # then the rest
    "selfie",
    "lsl",
    "paper_classnorm",
    "paper_dividemix_ce",
)

STUDY = Study(
    name="fmnist_ranking",
    description="Fashion-MNIST × IDN 30/50 % × the field's methods where CE memorises, three seeds",
    grid={
        "method": METHODS,
        "data.dataset": ("fashion-mnist",),
        "data.noise": ("idn:0.3", "idn:0.5"),
    },
    metric="test_acc_last10",
    profiles={
        "cpu": SweepProfile("cpu-memorise", seeds=(0, 1, 2), max_concurrent_trials=2),
        "gpu": gpu_profile(),
    },
)
