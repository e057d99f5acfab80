"""Named training set-ups: the paper's, and nfmix's own (chosen from measurements; see README's results).

``PRESETS[name]["2d"]`` and ``PRESETS[name]["images"]`` are keyword arguments for :class:`nfmix.MAFMixture`.
"""

from nfmix.model import PAPER_2D, PAPER_IMAGES

# Ten restarts side by side, k-means starts that put every flow on a different part of the data, a 10x larger
# step (2000 epochs at 1e-3 leave the flows under-trained), and hard EM. On measurements with seed 0,
# hard EM gave the best-likelihood ARI on moons (0.95 vs 0.93 for gradient ML), pinwheel (0.95 vs 0.92) and
# smile (0.43 vs 0.41); see results/toy for the full grid.
NFMIX_2D = dict(PAPER_2D, n_init=10, init="kmeans", learning_rate=1e-2, algorithm="em_hard", reseed=True)
# Images: k-means starts (with the scale floor in MAFMixture._initialise) and gradient ML. On a 10,000-image
# F-MNIST PCA-100 subsample, seed 0: ARI 0.40 against 0.34 for k-means and 0.29 for the paper's set-up;
# hard EM gave 0.31 there.
NFMIX_IMAGES = dict(PAPER_IMAGES, n_init=3, init="kmeans", reseed=True)

PRESETS = {
    "paper": {"2d": PAPER_2D, "images": PAPER_IMAGES},
    "nfmix": {"2d": NFMIX_2D, "images": NFMIX_IMAGES},
}


def _preset(name: str) -> dict:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    return PRESETS[name]


def settings(preset: str, kind: str, random_state=None, verbose: int = 0, **overrides) -> dict:
    """A preset's keyword arguments for ``kind`` ("2d" or "images"), with every override that is set.

    Falsy overrides (0, "", None) keep the preset's value: that is how notebook parameters say "default".
    ``random_state`` and ``verbose`` are always taken as given (a seed of 0 is a seed).
    """
    chosen = {name: value for name, value in overrides.items() if value}
    return {**_preset(preset)[kind], **chosen, "random_state": random_state, "verbose": verbose}


def setup_name(preset: str, kind: str, algorithm: str = "") -> str:
    """How results tables name a set-up: the preset, plus ``+algorithm`` where a run overrides its algorithm.

    Runs of one preset with different algorithms are then summarised apart instead of pooled as one set-up.
    """
    own_algorithm = _preset(preset)[kind]["algorithm"]
    if algorithm and algorithm != own_algorithm:
        return f"{preset}+{algorithm}"
    return preset
