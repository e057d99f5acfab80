"""Starting parameters of every restart: Glorot networks, and base Gaussians placed at random, by k-means, or
(``base="gmm"``) a fitted Gaussian mixture's full-covariance components with every flow at the identity."""

from __future__ import annotations

import warnings

import numpy as np

from nfmix.flows import MixtureSpec


def network_values(spec: MixtureSpec, rng: np.random.RandomState) -> list[np.ndarray]:
    """Every block's kernels (Glorot-uniform, masked) and zero biases, as ``tfb.AutoregressiveNetwork`` starts.

    For ``base="gmm"`` each block's last kernel is zero too, so every flow starts as the identity (shift 0,
    log-scale 0) and the mixture starts as its Gaussian mixture, exactly.
    """
    values = []
    shapes = spec.shapes()[MixtureSpec.NETWORKS :]
    for _ in range(spec.n_blocks):
        kernels = []
        for shape, mask in zip(shapes, spec.masks()):
            limit = np.sqrt(6.0 / (shape[-2] + shape[-1]))
            kernels.append(rng.uniform(-limit, limit, size=shape).astype(np.float32) * mask)
        if spec.base == "gmm":
            kernels[-1] = np.zeros_like(kernels[-1])
        values += kernels + [np.zeros(shape, np.float32) for shape in shapes[spec.n_layers : 2 * spec.n_layers]]
    return values


def initial_values(spec: MixtureSpec, X: np.ndarray, init, base_scale: float,
                   rng: np.random.RandomState) -> list[np.ndarray]:
    """All parameters in ``spec.names()`` order: networks first drawn, then the bases placed by ``init``."""
    return initial_state(spec, X, init, base_scale, rng)[0]


def initial_state(spec: MixtureSpec, X: np.ndarray, init, base_scale: float,
                  rng: np.random.RandomState) -> tuple[list[np.ndarray], np.ndarray | None]:
    """``(values, labels)``: the starting parameters, and each restart's starting partition ``[R, n]`` (None for
    "random", which has none). "kmeans" and "spectral" cluster once per restart; an array is every restart's."""
    R, K = spec.batch_shape
    if spec.base == "gmm":
        # The seeds come first, so that restart r starts as GaussianMixture(random_state=seeds[r]) fitted here.
        seeds = rng.randint(2**31 - 1, size=R)
        networks = network_values(spec, rng)
        logits, loc, whitening, labels = _gmm_bases(X, K, init, seeds, rng)
        return [np.asarray(a, np.float32) for a in (logits, loc, whitening)] + networks, labels
    networks = network_values(spec, rng)
    labels = None
    if isinstance(init, str) and init == "random":  # the paper's: locations uniform in [0, 1)^D, one scale, equal weights
        loc = rng.rand(R, K, spec.n_features)
        scale = np.full((R, K, spec.n_features), base_scale)
        logits = np.ones((R, K))
    elif isinstance(init, str) and init == "kmeans":
        loc, scale, logits, labels = _kmeans_bases(X, R, K, rng)
    else:
        labels = _spectral_labels(X, R, K, rng) if isinstance(init, str) else np.tile(np.asarray(init), (R, 1))
        loc, scale, logits = _bases_from_labels(X, labels, K)
    return [np.asarray(a, np.float32) for a in (logits, loc, scale)] + networks, labels


def _gmm_bases(X, n_components, init, seeds, rng):
    """Each restart's Gaussian mixture (:func:`gmm_start`) as log weights, means and whitening matrices, and its
    partition: the one it started from (spectral, labels), else its own clusters."""
    R = len(seeds)
    partition = None
    if isinstance(init, str) and init == "spectral":
        partition = _spectral_labels(X, R, n_components, rng)
    elif not isinstance(init, str):
        partition = np.tile(np.asarray(init), (R, 1))
    mixtures = [gmm_start(X, n_components, init if isinstance(init, str) else "labels", seeds[r],
                          None if partition is None else partition[r]) for r in range(R)]
    logits = np.log(np.stack([m.weights_ for m in mixtures]))
    loc = np.stack([m.means_ for m in mixtures])
    whitening = np.stack([whitening_of(m) for m in mixtures])
    labels = partition if partition is not None else np.stack([m.predict(X) for m in mixtures])
    return logits, loc, whitening, labels


GMM_INIT_PARAMS = {"kmeans": "kmeans", "random": "random_from_data", "spectral": "kmeans", "labels": "kmeans"}


def gmm_start(X: np.ndarray, n_components: int, init: str, seed: int, partition: np.ndarray | None = None):
    """The fitted ``GaussianMixture`` (full covariances, one EM run from ``seed``) that one restart starts as.

    ``init`` "kmeans" and "random" are scikit-learn's own starts (k-means, random data points); a ``partition``
    (spectral, or the user's labels) gives EM its starting means and weights.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    starts = {}
    if partition is not None:
        counts = np.bincount(partition, minlength=n_components)
        means = np.stack([X[partition == k].mean(axis=0) if counts[k] else X.mean(axis=0)
                          for k in range(n_components)])
        starts = dict(means_init=means, weights_init=np.maximum(counts, 1) / np.maximum(counts, 1).sum())
    with warnings.catch_warnings():  # a start short of EM's tolerance is still that GMM
        warnings.simplefilter("ignore", ConvergenceWarning)
        return GaussianMixture(n_components, covariance_type="full", init_params=GMM_INIT_PARAMS[init],
                               random_state=seed, **starts).fit(np.asarray(X, np.float64))


def whitening_of(mixture) -> np.ndarray:
    """Each component's lower-triangular ``W`` with ``W (x - mean)`` whitened: ``W^T W`` is its precision.

    scikit-learn's ``precisions_cholesky_`` ``U`` (upper) has ``precision = U U^T`` and whitens by ``U^T (x - mean)``.
    """
    return np.swapaxes(mixture.precisions_cholesky_, -1, -2)


def _scale_floor(X) -> float:
    # Pixels that are constant inside a cluster would give a near-zero scale and a spiky, useless start;
    # a floor at 0.3 x the mean feature std measured best on digits (ARI 0.70 vs 0.56 at 0.1, 0.68 at 1.0).
    return 0.3 * X.std(axis=0).mean()


def _bases_from_labels(X, labels, n_components, centres=None):
    """Each restart's bases from its partition ``labels [R, n]``: cluster means (or ``centres [R, K, D]``),
    per-feature spreads floored by :func:`_scale_floor`, and log proportions. An empty cluster starts wide."""
    floor, d = _scale_floor(X), X.shape[1]
    R = len(labels)
    loc, scale = np.empty((R, n_components, d)), np.empty((R, n_components, d))
    logits = np.empty((R, n_components))
    for r in range(R):
        for k in range(n_components):
            members = X[labels[r] == k]
            loc[r, k] = centres[r, k] if centres is not None else (members.mean(axis=0) if len(members) else X.mean(axis=0))
            spread = members.std(axis=0) if len(members) > 1 else X.std(axis=0)
            scale[r, k] = np.maximum(spread, floor)
            logits[r, k] = np.log(max(len(members), 1) / len(X))
    return loc, scale, logits


def _kmeans_bases(X, n_restarts, n_components, rng):
    """Each restart's own k-means: centroids, per-cluster scales (with a floor), proportions, and its labels."""
    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning

    labels, centres = np.empty((n_restarts, len(X)), np.int64), np.empty((n_restarts, n_components, X.shape[1]))
    for r in range(n_restarts):
        with warnings.catch_warnings():  # fewer distinct points than clusters: the empty ones start wide, below
            warnings.simplefilter("ignore", ConvergenceWarning)
            km = KMeans(n_components, n_init=1, random_state=rng.randint(2**31 - 1)).fit(X)
        labels[r], centres[r] = km.labels_, km.cluster_centers_
    return (*_bases_from_labels(X, labels, n_components, centres), labels)


def _spectral_labels(X, n_restarts, n_components, rng) -> np.ndarray:
    """Each restart's own spectral clustering on the 10-nearest-neighbour graph (scikit-learn's settings).

    Its cost grows faster than linearly with the rows (an eigenproblem on the graph): for sets of thousands.
    """
    from sklearn.cluster import SpectralClustering

    labels = np.empty((n_restarts, len(X)), np.int64)
    for r in range(n_restarts):
        with warnings.catch_warnings():  # a graph in several pieces still gives a usable partition
            warnings.filterwarnings("ignore", message="Graph is not fully connected")
            labels[r] = SpectralClustering(n_components, affinity="nearest_neighbors",
                                           random_state=rng.randint(2**31 - 1)).fit_predict(X)
    return labels
