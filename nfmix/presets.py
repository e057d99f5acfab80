"""Named training set-ups: the paper's, and nfmix's own (chosen from measurements; see docs/studies/).

``PRESETS[name][kind]`` ("2d", "images", "embedding") are keyword arguments for :class:`nfmix.MAFMixture`:
"paper" and "nfmix" (the clusters' best) have every kind, "density" (the held-out likelihood's best) has "2d".
This module imports no TensorFlow, so reading a preset is instant.
"""

# The paper's set-ups (REFERENCE.md): one restart, random base locations, scale 0.1, logits 1, Adam 1e-3, the
# full 2000 (or 10) epochs with no stopping rule.
PAPER_2D = dict(
    base="diag",
    hidden_units=(10,),
    n_blocks=1,
    activation="tanh",
    init="random",
    n_init=1,
    algorithm="mle",
    epochs=2000,
    batch_size=4000,
    learning_rate=1e-3,
    base_scale=0.1,
    reseed=False,
    tol=None,
)
# Images: pixels / 255 or their principal components as they are (rescale=None): the paper rescaled only its 2D sets.
PAPER_IMAGES = dict(PAPER_2D, hidden_units=(1024,), epochs=10, batch_size=1000, rescale=None)

# Ten restarts side by side, k-means starts that put every flow on a different part of the data, a 10x larger
# step (2000 epochs at 1e-3 leave the flows under-trained), and hard EM: results/toy/summary.md, rows
# "maf_mixture (nfmix)" against "maf_mixture (paper)" on each set. Hard EM was chosen on seed-0 runs that
# results/ does not keep; results/defaults compares it with gradient ML only for base="gmm" (rows "gmm, em_hard,
# early stopping" and "gmm, mle, early stopping"). base="auto" then keeps the Gaussian mixture instead where the
# flows' likelihood does not pay for their parameters (AIC): results/defaults/summary.md, "defaults" against
# "diag" (iris and breast cancer, where the flows lost to the GMM).
NFMIX_2D = dict(PAPER_2D, base="auto", n_init=10, init="kmeans", learning_rate=1e-2, algorithm="em_hard", reseed=True)
# Images: k-means starts (with the scale floor in nfmix.initialise), gradient ML, and ten restarts. Gradient ML:
# results/digits/summary.md, row "nfmix image set-up" against "hard EM" on digits. The k-means starts were chosen
# on one F-MNIST PCA-100 seed that results/ does not keep. Ten restarts, not three: results/digits/summary.md, row
# "nfmix image set-up" against "3 restarts" (a higher mean ARI, and a smaller spread over seeds). The flows alone
# (PAPER_IMAGES' base="diag"): base="auto" was not measured on images. The features as they are (PAPER_IMAGES'
# rescale=None): results/digits/summary.md, row "nfmix image set-up" against "rescaled to [0, 1]" on F-MNIST
# PCA-100, where min-max scaling stretches the late principal components as wide as the first and the kept
# restart leaves components empty.
NFMIX_IMAGES = dict(PAPER_IMAGES, n_init=10, init="kmeans", reseed=True)

# A UMAP embedding of images (nfmix.embedding, notebook 06): the 2D set-up with gradient ML, 300 epochs (70,000
# points give 18 minibatches an epoch), and a 75-epoch warm-up on the clusters of the full-covariance GMM first
# (init="gmm"). Chosen on results/collapse/summary.md, row "gradient ML, 75-epoch warm-up on the GMM's clusters"
# against "gradient ML, 75-epoch warm-up on k-means clusters" (the preset before it) and the GMM itself; the row
# "gradient ML (preset: init="gmm")" is this dict as the estimator runs it.
NFMIX_EMBEDDING = dict(NFMIX_2D, base="diag", epochs=300, algorithm="mle", init="gmm", init_epochs=75)
# Density, not clusters: GMM-nested components (each starts as a full-covariance GaussianMixture component, its
# flow at the identity) with early stopping on held-out likelihood: 30% of the rows held out, and 60 checks (300
# epochs of hard EM) without a better held-out score. results/density/summary.md, set-up "MAFMixture.density":
# not below the GMM's held-out log-likelihood on any set, and above it on all six seeds of every curved 2D set.
# Against set-up "gmm, early stopping" (10% held out, 20 checks), which fell back to the GMM on four of six smile
# seeds: too few held-out rows (28) for a gain to clear the two-standard-error bar. Its clusters are not the best
# (see results/defaults), so it is not the constructor's default.
NFMIX_DENSITY = dict(NFMIX_2D, base="gmm", n_iter_no_change=60, validation_fraction=0.3)
KINDS = ("2d", "images", "embedding")
PRESETS = {
    "paper": {"2d": PAPER_2D, "images": PAPER_IMAGES, "embedding": PAPER_2D},
    "nfmix": {"2d": NFMIX_2D, "images": NFMIX_IMAGES, "embedding": NFMIX_EMBEDDING},
    "density": {"2d": NFMIX_DENSITY},
}


def _preset(name: str) -> dict:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    return PRESETS[name]


def _kind(preset: str, kind: str) -> dict:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(map(repr, KINDS))}; got {kind!r}")
    kinds = _preset(preset)
    if kind not in kinds:
        raise ValueError(f"preset {preset!r} has no {kind!r} set-up (it was measured for {', '.join(kinds)})")
    return kinds[kind]


def settings(preset: str, kind: str, random_state=None, verbose: int = 0, **overrides) -> dict:
    """A preset's keyword arguments for ``kind`` ("2d", "images" or "embedding"), with every override but ``None``.

    ``None`` keeps the preset's value; any other value, 0, ``False`` and ``""`` included, replaces it. A preset's
    warm-up (``init_epochs``) keeps its share of the epochs when only ``epochs`` is overridden.
    """
    chosen = {name: value for name, value in overrides.items() if value is not None}
    base = _kind(preset, kind)
    if base.get("init_epochs") and "epochs" in chosen and "init_epochs" not in chosen:
        chosen["init_epochs"] = int(base["init_epochs"] * chosen["epochs"] // base["epochs"])
    return {**base, **chosen, "random_state": random_state, "verbose": verbose}


def setup_name(preset: str, kind: str, algorithm: str | None = None) -> str:
    """How results tables name a set-up: the preset, plus ``+algorithm`` where a run overrides its algorithm.

    Runs of one preset with different algorithms are then summarised apart instead of pooled as one set-up.
    """
    own_algorithm = _kind(preset, kind)["algorithm"]
    if algorithm and algorithm != own_algorithm:
        return f"{preset}+{algorithm}"
    return preset
