"""Starting parameters of every restart: Glorot networks, and base Gaussians placed at random, by k-means, from a
partition (spectral clustering's, a Gaussian mixture's, or the user's), or (``base="gmm"``) a fitted Gaussian
mixture's full-covariance components with every flow at the identity."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np

from nfmix.flows import MixtureSpec
from nfmix.scaling import FeatureScaling


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


def initial_values(
    spec: MixtureSpec, X: np.ndarray, init, base_scale: float, rng: np.random.RandomState
) -> list[np.ndarray]:
    """All parameters in ``spec.names()`` order: networks first drawn, then the bases placed by ``init``."""
    return initial_state(spec, X, init, base_scale, rng)[0]


@dataclasses.dataclass(frozen=True)
class GmmStart:
    """How ``base="gmm"`` fits its Gaussian mixture: in the data's own units (``scaling`` maps the flows' rescaled
    rows back), with ``n_init`` EM runs and ``random_state`` (an int, or None to draw one from the fit's
    generator), as ``GaussianMixture(k, covariance_type="full", n_init=n_init, random_state=random_state)``."""

    scaling: FeatureScaling | None = None
    n_init: int = 1
    random_state: int | None = None


def initial_state(
    spec: MixtureSpec, X: np.ndarray, init, base_scale: float, rng: np.random.RandomState, gmm: GmmStart = GmmStart()
) -> tuple[list[np.ndarray], np.ndarray | None]:
    """``(values, labels)``: the starting parameters, and each restart's starting partition ``[R, n]`` (None for
    "random", which has none). "kmeans" and "spectral" cluster once per restart; an array is every restart's.
    For ``base="gmm"``, every restart starts as one fitted Gaussian mixture (``gmm``), or, from a partition,
    as the mixture that EM reaches from it."""
    R, K = spec.batch_shape
    if spec.base == "gmm":
        logits, loc, whitening, labels = _gmm_bases(X, K, R, init, rng, gmm)
        networks = network_values(spec, rng)
        return [np.asarray(a, np.float32) for a in (logits, loc, whitening)] + networks, labels
    networks = network_values(spec, rng)
    labels = None
    if (
        isinstance(init, str) and init == "random"
    ):  # the paper's: locations uniform in [0, 1)^D, one scale, equal weights
        loc = rng.rand(R, K, spec.n_features)
        scale = np.full((R, K, spec.n_features), base_scale)
        logits = np.ones((R, K))
    elif isinstance(init, str) and init == "kmeans":
        loc, scale, logits, labels = _kmeans_bases(X, R, K, rng)
    else:
        labels = _spectral_labels(X, R, K, rng) if isinstance(init, str) else np.tile(np.asarray(init), (R, 1))
        loc, scale, logits = _bases_from_labels(X, labels, K)
    return [np.asarray(a, np.float32) for a in (logits, loc, scale)] + networks, labels


def _gmm_bases(X, n_components: int, n_restarts: int, init, rng, gmm: GmmStart):
    """Each restart's Gaussian mixture as log weights, means and whitening matrices in the flows' rescaled units,
    and its partition: the one it started from (spectral, labels), else the mixture's clusters.

    The mixture is fitted in the data's units and then mapped to the rescaled ones, which leaves its density
    (up to the rescaling's log-determinant) and its clusters exactly those of the ``GaussianMixture`` a user
    fits to their data: a GMM's k-means start and covariance floor are not invariant to rescaling features.
    """
    scaling, raw = _in_data_units(X, gmm)
    partition = None
    if isinstance(init, str) and init == "spectral":
        partition = _spectral_labels(X, n_restarts, n_components, rng)
    elif not isinstance(init, str):
        partition = np.tile(np.asarray(init), (n_restarts, 1))
    if partition is None:
        mixtures = [gmm_start(raw, n_components, init, _seed(gmm, rng), n_init=gmm.n_init)] * n_restarts
    else:  # EM from each restart's own partition
        seeds = rng.randint(2**31 - 1, size=n_restarts)
        mixtures = [gmm_start(raw, n_components, "labels", seeds[r], partition[r]) for r in range(n_restarts)]
    logits = np.log(np.stack([m.weights_ for m in mixtures]))
    loc = np.stack([scaling.transform(m.means_) for m in mixtures])
    # W whitens x - mean in data units; x = range * x' + min, so W diag(range) whitens x' - mean'.
    whitening = np.stack([whitening_of(m) for m in mixtures]) * scaling.data_range
    labels = partition if partition is not None else np.stack([m.predict(raw) for m in mixtures])
    return logits, loc, whitening, labels


def gaussian_mixture_labels(X: np.ndarray, n_components: int, rng, gmm: GmmStart) -> np.ndarray:
    """``init="gmm"``'s partition of the (rescaled) rows ``X``: the clusters of the ``GaussianMixture`` that ``gmm``
    describes, fitted in the data's units, so that they are those a user's own ``GaussianMixture`` finds."""
    _, raw = _in_data_units(X, gmm)
    return gmm_start(raw, n_components, "kmeans", _seed(gmm, rng), n_init=gmm.n_init).predict(raw)


def _in_data_units(X: np.ndarray, gmm: GmmStart):
    """``(scaling, X in the data's own units)``: a GMM's k-means start and covariance floor are not invariant to
    rescaling features, so it is fitted there."""
    scaling = gmm.scaling or FeatureScaling.identity(X.shape[1])
    return scaling, scaling.inverse_transform(X)


def _seed(gmm: GmmStart, rng) -> int:
    return gmm.random_state if gmm.random_state is not None else rng.randint(2**31 - 1)


GMM_INIT_PARAMS = {"kmeans": "kmeans", "random": "random_from_data", "spectral": "kmeans", "labels": "kmeans"}


def gmm_start(
    X: np.ndarray, n_components: int, init: str, seed: int, partition: np.ndarray | None = None, n_init: int = 1
):
    """The fitted ``GaussianMixture`` (full covariances, ``n_init`` EM runs from ``seed``) that a restart starts as.

    ``init`` "kmeans" and "random" are scikit-learn's own starts (k-means, random data points); a ``partition``
    (spectral, or the user's labels) gives EM its starting means and weights.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    starts = {}
    if partition is not None:
        counts = np.bincount(partition, minlength=n_components)
        means = np.stack([X[partition == k].mean(axis=0) if counts[k] else X.mean(axis=0) for k in range(n_components)])
        starts = dict(means_init=means, weights_init=np.maximum(counts, 1) / np.maximum(counts, 1).sum())
    with warnings.catch_warnings():  # a start short of EM's tolerance is still that GMM
        warnings.simplefilter("ignore", ConvergenceWarning)
        return GaussianMixture(
            n_components,
            covariance_type="full",
            n_init=n_init,
            init_params=GMM_INIT_PARAMS[init],
            random_state=seed,
            **starts,
        ).fit(np.asarray(X, np.float64))


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
            loc[r, k] = (
                centres[r, k] if centres is not None else (members.mean(axis=0) if len(members) else X.mean(axis=0))
            )
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
            labels[r] = SpectralClustering(
                n_components, affinity="nearest_neighbors", random_state=rng.randint(2**31 - 1)
            ).fit_predict(X)
    return labels
