"""The report's medical experiments (Tables IV–V): Chest X-ray (Kermany et al.) and Chaoyang under IDN
20/30 %, selection threshold 0.25 (the report's value for the medical sets), the pipeline on DivideMix
(Table IV's "Our Method"), DivideMix, C2D, the pipeline on one network and its focal-loss variants
(focal as the main loss; SWCE + focal for selection). The report's numbers are test F1:
`noisylab report --study medical --vs-paper --metric f1`."""

from noisylab.sweeps import Study, cpu_profile, gpu_profile

THRESHOLD = 0.25  # selection-loss threshold the report uses for the medical sets (1.0 for CIFAR)

STUDY = Study(
    name="medical",
    description="Tables IV–V: Chest X-ray and Chaoyang × IDN 20/30 %, threshold 0.25, focal variants",
    grid={
        "method": ("paper_dividemix", "dividemix", "c2d", "paper", "paper_focal", "paper_swce_focal", "ce"),
        "data.dataset": ("chest-xray", "chaoyang"),
        "data.noise": ("idn:0.2", "idn:0.3"),
    },
    profiles={
        # Both sets are photographs/radiographs of a few hundred pixels: 224 px, ImageNet stem.
        "gpu": gpu_profile(**{"refine.threshold": THRESHOLD, "data.image_size": 224}),
        "cpu": cpu_profile(**{"refine.threshold": THRESHOLD, "data.image_size": 64}),
    },
)
