"""Label noise: seeded generators, label files and the noise cache; arrays in, arrays out.

A `NoiseSpec` (parsed from text such as ``idn:0.3``) says which noise to apply;
`make_noisy_labels` applies it to a data set's clean labels and reports the realised flip rate
and the empirical transition matrix. Every generator draws all of its randomness from
``np.random.default_rng(seed)``, so the same spec, seed and data give the same noisy labels.

Kinds:

* ``none``      -- labels unchanged.
* ``idn``       -- instance-dependent noise of Xia et al. 2020 (`idn_labels`).
* ``symmetric`` -- flip to a uniformly drawn *other* class (`symmetric_labels`).
* ``pair``      -- flip y to (y + 1) mod C (`pair_labels`).
* ``file``      -- labels read from a file, e.g. CIFAR-10N/100N human labels (`load_label_file`).
"""

from noisylab.noise.files import load_label_file
from noisylab.noise.generators import (
    idn_labels,
    idn_probabilities,
    pair_labels,
    symmetric_labels,
    transition_matrix,
    truncated_normal,
)
from noisylab.noise.make import MAX_TRANSITION_ENTRIES, check_noise_size, idn_draws, make_noisy_labels
from noisylab.noise.spec import NoiseKind, NoiseSpec, NoisyLabels

__all__ = [
    "MAX_TRANSITION_ENTRIES",
    "NoiseKind",
    "NoiseSpec",
    "NoisyLabels",
    "check_noise_size",
    "idn_draws",
    "idn_labels",
    "idn_probabilities",
    "load_label_file",
    "make_noisy_labels",
    "pair_labels",
    "symmetric_labels",
    "transition_matrix",
    "truncated_normal",
]
