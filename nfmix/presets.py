"""Named training set-ups: the paper's, and nfmix's own (chosen from measurements; see README's results).

``PRESETS[name]["2d"]`` and ``PRESETS[name]["images"]`` are keyword arguments for :class:`nfmix.MAFMixture`.
"""

from nfmix.model import PAPER_2D, PAPER_IMAGES

# Ten restarts side by side cost little more than one, a 10x larger step trains in the same 2000 epochs,
# and k-means starts put every flow on a different part of the data.
NFMIX_2D = dict(PAPER_2D, n_init=10, init="kmeans", learning_rate=1e-2, reseed=True)
NFMIX_IMAGES = dict(PAPER_IMAGES, n_init=4, init="kmeans", learning_rate=1e-3, reseed=True)

PRESETS = {
    "paper": {"2d": PAPER_2D, "images": PAPER_IMAGES},
    "nfmix": {"2d": NFMIX_2D, "images": NFMIX_IMAGES},
}
