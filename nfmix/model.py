"""``MAFMixture``: a mixture of masked autoregressive flows as a scikit-learn clustering and density estimator.

    p(x) = sum_k pi_k p_k(x),   p_k = MAF_k pushed-forward N(loc_k, diag(scale_k^2)),
    cluster(x) = argmax_k  log pi_k + log p_k(x).

All ``n_init`` restarts train side by side in one compiled loop (:mod:`nfmix.fitting`); the one with the best
final log-likelihood is kept. Clusters are read off as the most probable component, exactly as in the paper.
"""

from __future__ import annotations

import dataclasses
import numbers
import warnings

import numpy as np
from scipy.special import logsumexp, softmax
from sklearn.base import BaseEstimator, ClusterMixin, DensityMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state, check_scalar
from sklearn.utils.validation import check_is_fitted, validate_data

from nfmix import persistence, presets
from nfmix.scaling import FeatureScaling

ALGORITHMS = ("mle", "em_soft", "em_hard")
INITS = ("random", "kmeans", "spectral", "gmm")
ACTIVATION_NAMES = ("tanh", "relu", "elu", "gelu", "sigmoid")
BASES = ("auto", "diag", "gmm")
# base="auto" weighs the flows against a full-covariance Gaussian mixture up to this many features; beyond it the
# mixture's D x D covariances cost more than the flows (raw pixels: 784 features, 300,000 parameters a component).
AUTO_MAX_FEATURES = 100
MAX_ABS_VALUE = 1e15  # beyond this (in rescaled units), squares in float32 density arithmetic overflow
FLOAT32_TINY = float(np.finfo(np.float32).tiny)
FLOAT_DTYPES = (np.float64, np.float32)  # float32 data stays float32 (no copy); anything else becomes float64
SPECTRAL_NEIGHBOURS = 10  # scikit-learn's SpectralClustering graph (nfmix.initialise)
MIN_BASE_SCALE = 1e-18  # its square, ~1e-36, is still a normal float32
RACE_FRACTION = 0.1  # of the epochs, trained by every restart before only the n_init_kept best go on
MIN_FLOAT32_STEPS = 1000  # a feature with fewer distinct float32 values across its range has lost its precision


class MAFMixture(ClusterMixin, DensityMixin, BaseEstimator):
    """Mixture of ``n_components`` masked autoregressive flows, trained by maximum likelihood or EM.

    Each component is a diagonal Gaussian pushed through its own ``tfp.bijectors.MaskedAutoregressiveFlow``;
    a point's cluster is its most probable component. By default (``base="auto"``) the fitted flows are then
    weighed against a full-covariance Gaussian mixture by AIC, and the mixture is kept where the flows do not
    pay for their parameters. The defaults are nfmix's best measured set-up for clustering low-dimensional data
    (docs/studies/defaults.md); :meth:`paper` gives the published one and :meth:`density` the best for density.

    By default (``rescale="minmax"``) ``fit`` maps each feature to [0, 1] by its training minimum and range
    (:mod:`nfmix.scaling`), the scale the paper's 2D set-up assumes, so the fitted clusters do not depend on where
    the data sit or on each feature's units, as a Gaussian mixture's do not. Every density, score and sample is
    in the data's own units: the rescaling's log-determinant is part of each log-density.

    Parameters
    ----------
    n_components : int, default=2
        Number of flows (clusters).
    hidden_units : tuple of int, default=(10,)
        Hidden layer widths of each flow's autoregressive network (MADE).
    n_blocks : int, default=1
        MAF blocks per flow, with the order of the dimensions reversed between blocks.
    activation : {"tanh", "relu", "elu", "gelu", "sigmoid"}, default="tanh"
        Hidden activation of the networks.
    n_init : int, default=10
        Restarts trained side by side; the one with the best final log-likelihood is kept.
    n_init_kept : int or None, default=None
        Race the restarts: after a tenth of ``epochs`` only the ``n_init_kept`` with the lowest training loss
        train on (the race ends at the first check after that, and after any warm-up); the others stop there, are
        dropped from the computation (they cost no more time) and are never the fitted model
        (``history_["pruned"]``). None (or ``n_init`` or more) trains every restart to the end.
    init : {"kmeans", "random", "spectral", "gmm"} or array-like of shape (n_samples,), default="kmeans"
        "kmeans": each restart runs its own k-means and starts each base Gaussian at a centroid, with the
        cluster's per-feature spread (floored at 0.3 x the mean feature std) and proportion. "random": the
        paper's, base locations uniform in [0, 1)^D with scale ``base_scale`` and equal weights. "spectral": each
        restart's own spectral clustering on the 10-nearest-neighbour graph gives a partition, which places the
        bases as k-means' does and which the flows first learn (``init_epochs``); for sets of thousands of rows.
        "gmm": the clusters of ``GaussianMixture(n_components, covariance_type="full", n_init=n_init,
        random_state=random_state)``, fitted in the data's own units to the rows the bases are placed on, are
        every restart's partition (used like "spectral"); with ``base="gmm"`` that mixture is also the start.
        An array of labels in ``[0, n_components)`` is every restart's starting partition (used like "spectral").
    init_epochs : int or None, default=None
        Epochs at the start in which each flow trains on its starting cluster alone (the partition of ``init``
        held fixed, with the weights at its proportions); the chosen ``algorithm`` trains the rest of ``epochs``.
        None means ``epochs // 4`` for "spectral", "gmm" and label arrays, and 0 (bases only) for "kmeans" and
        "random"; "random" has no partition, so it takes only 0.
    algorithm : {"em_hard", "em_soft", "mle"}, default="em_hard"
        "mle": gradient ascent on the log-likelihood (the paper's). "em_soft" / "em_hard": an E-step every
        ``m_step_epochs`` epochs sets the responsibilities (or their arg-max) and the weights in closed form;
        the M-step trains the flows on them by gradient. Hard EM maximises the classification likelihood.
    epochs : int, default=2000
        Gradient epochs over the data, for every algorithm.
    batch_size : int, default=4000
        Minibatch size; at least ``n_samples`` means full-batch training.
    learning_rate : float, default=1e-2
        Adam's step size (Keras' betas and epsilon).
    m_step_epochs : int, default=5
        Epochs per M-step for the EM algorithms.
    base : {"auto", "diag", "gmm"}, default="auto"
        "auto": fit the "diag" flows, then keep them or the full-covariance
        ``GaussianMixture(n_components, n_init=n_init, random_state=random_state)``, fitted to all of ``X`` in its
        own units, whichever has the lower AIC on ``X``: the flows are kept only where their log-likelihood gain
        pays for their extra parameters. Kept, the Gaussian mixture is the model exactly (every flow at the
        identity; ``gaussian_only_`` is True). With more than 100 features, where full covariances are costly,
        "auto" is "diag"; where that mixture cannot be fitted, a warning says so and the flows are kept.
        "diag": each flow pushes forward a diagonal Gaussian placed by ``init`` (the paper's model). "gmm": each
        component is ``x = mean_k + W_k^-1 MAF_k(z)`` with ``z ~ N(0, I)``, and every restart starts as
        ``GaussianMixture(n_components, covariance_type="full", n_init=n_init, random_state=random_state)``
        fitted to all of ``X`` in its own units (early stopping's held-out rows too; ``init`` "random" fits it
        from random data points), with every flow at the identity: the fit starts as that Gaussian mixture,
        exactly, and the restarts differ in their networks. From a partition (spectral, labels), each restart
        starts where EM goes from its own. The flows then work in each component's whitened coordinates.
    base_scale : float, default=0.1
        Standard deviation of the base Gaussians for ``base="diag"``, ``init="random"``, in the units the flows
        see (with ``rescale="minmax"``, features span [0, 1]).
    trainable_base : bool, default=False
        Also learn the base locations (the paper keeps them fixed); with ``base="gmm"`` the means and whitening
        matrices.
    reseed : bool, default=True
        Re-seed a component whose weight falls below ``min_weight`` at the data point that its restart explains
        worst, with fresh network weights and fresh Adam state (at most ``2 * n_components`` times a restart).
    min_weight : float or None, default=None
        Weight below which a component counts as collapsed; None means ``0.1 / n_components``.
    tol : float or None, default=None
        Stop once the best restart's mean negative log-likelihood improves by less than ``tol`` nats between two
        checks. None trains the full ``epochs`` (no stopping rule). With ``n_iter_no_change``, the held-out
        improvement that counts instead.
    validation_fraction : float, default=0.1
        Share of the rows held out for early stopping (only with ``n_iter_no_change``), drawn with
        ``random_state``.
    n_iter_no_change : int or None, default=None
        Early stopping on held-out likelihood, as in scikit-learn's gradient boosting: a restart stops once its
        mean log-likelihood on the held-out rows has not improved by more than ``tol`` (0 if None) for this many
        checks (``check_every``; every E-step for EM), and every restart ends at its best held-out weights
        (the starting weights count, so ``base="gmm"`` never ends below its Gaussian mixture on the held-out
        rows, which that mixture was fitted to as well: the flows must beat it where it is at its best, and by
        two standard errors of the per-row gain).
        Restarts are then ranked by held-out likelihood; for ``base="gmm"``, whose start saw those rows, by its
        Gaussian mixture's likelihood on all rows plus what its flows gained on the held-out ones (with no
        gain, the ranking of ``GaussianMixture``'s own restarts). None trains on every row with no such rule.
    check_every : int or None, default=None
        Epochs between checks (divergence, collapse, ``tol``, progress, callback). None means 100 for full-batch
        and 1 for minibatch training; the EM algorithms check at every E-step.
    jit_compile : bool, default=True
        Compile the training loop with XLA.
    rescale : {"minmax", None}, default="minmax"
        "minmax": the flows see each feature mapped to [0, 1] by its training minimum and range. None: they see
        the features as given, as the paper's image set-up did (pixels / 255, or their principal components),
        where min-max scaling would stretch a feature of small variance, such as a late principal component, as
        wide as the first.
    random_state : int, RandomState instance or None, default=None
        Seeds the starts and the minibatch order: the same int gives the same model.
    verbose : int, default=0
        0 is silent, 1 shows a progress bar.

    Attributes
    ----------
    data_min_ : ndarray of shape (n_features_in_,)
        Each feature's minimum on the training data (float64); 0 with ``rescale=None``.
    data_range_ : ndarray of shape (n_features_in_,)
        Each feature's range on the training data, 1 for a constant feature; 1 with ``rescale=None``. The flows
        see ``(X - data_min_) / data_range_``.
    params_ : dict of str to ndarray
        The kept restart's parameters: ``logits (K,)``, ``loc (K, D)``, ``scale (K, D)`` and every block's
        ``made_b/kernel_i (K, in, out)`` (unmasked) and ``made_b/bias_i (K, out)``.
    weights_ : ndarray of shape (n_components,)
        Mixture weights pi_k.
    labels_ : ndarray of shape (n_samples,)
        The most probable component of each training point.
    history_ : dict
        ``"start_loss"``: the kept restart's mean negative log-likelihood at its starting weights
        (``"start_loss_per_restart"``: every restart's);
        ``"loss"``: the same, one value per epoch, each the
        mean over that epoch's minibatches evaluated before their updates (for every algorithm);
        ``"loss_per_restart"`` the same for all restarts (NaN once a restart diverged, stopped or lost the race of
        ``n_init_kept``: ``"pruned"``); ``"em_objective"``
        (EM only) the M-step objective -mean_n sum_k r_nk log p_k(x_n); ``"reseeds"`` and ``"diverged"``
        (one dict per event, with its epoch); ``"e_steps"``; ``"compiled_calls"``, the fit's calls into its
        compiled loop (one, plus one per re-seed, warm-up, progress-bar step or compaction of stopped restarts,
        and one per check with a ``callback``, or per ``callback_every`` epochs); ``"seconds"`` of training;
        with ``base="auto"``, ``"aic"``: the flows' and the Gaussian mixture's AIC on the training data.
    gaussian_only_ : bool
        True when ``base="auto"`` kept the Gaussian mixture rather than the flows (``history_["aic"]`` gives
        both criteria); the fitted spec is then that of ``base="gmm"``, with every flow at the identity, and
        ``params_``, ``weights_``, ``lower_bound_`` (on all of ``X``), ``labels_``, ``aic`` and ``bic`` are the
        mixture's, while the training record (``best_restart_``, ``restart_losses_``, ``n_iter_``,
        ``converged_``, ``history_`` and early stopping's scores) stays that of the flows it was weighed against.
    best_restart_ : int
        Index of the kept restart: the best final training likelihood, or with early stopping the best held-out.
    validation_scores_ : list of float
        With early stopping: the kept restart's mean held-out log-likelihood at the start and at every check
        until it stopped (``history_["validation_loss"]`` holds its negatives, NaN once stopped, and
        ``history_["validation_epochs"]`` the epochs of the checks).
    best_validation_score_ : float
        With early stopping: the best of ``validation_scores_``, the kept model's.
    restart_losses_ : ndarray of shape (n_init,)
        Each restart's final mean negative log-likelihood on the training data (inf if it was not finite).
    lower_bound_ : float
        Mean log-likelihood of the kept model on the rows it trained on (all of ``X``, less the held-out rows
        of early stopping), ``-restart_losses_[best_restart_]``.
    converged_ : bool
        True only when the ``tol`` rule, or early stopping of every restart, stopped training.
    n_iter_ : int
        Gradient epochs run (the same for every algorithm; EM's E-steps are ``history_["e_steps"]``).
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Feature names, when ``X`` had string column names.

    Examples
    --------
    >>> from nfmix import MAFMixture, load_dataset
    >>> X, y = load_dataset("moons")
    >>> labels = MAFMixture(2, random_state=0).fit_predict(X)  # doctest: +SKIP
    """

    def __init__(
        self,
        n_components=2,
        *,
        hidden_units=(10,),
        n_blocks=1,
        activation="tanh",
        n_init=10,
        n_init_kept=None,
        init="kmeans",
        init_epochs=None,
        algorithm="em_hard",
        epochs=2000,
        batch_size=4000,
        learning_rate=1e-2,
        m_step_epochs=5,
        base="auto",
        base_scale=0.1,
        trainable_base=False,
        reseed=True,
        min_weight=None,
        tol=None,
        validation_fraction=0.1,
        n_iter_no_change=None,
        check_every=None,
        jit_compile=True,
        rescale="minmax",
        random_state=None,
        verbose=0,
    ):
        self.n_components = n_components
        self.hidden_units = hidden_units
        self.n_blocks = n_blocks
        self.activation = activation
        self.n_init = n_init
        self.n_init_kept = n_init_kept
        self.init = init
        self.init_epochs = init_epochs
        self.algorithm = algorithm
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.m_step_epochs = m_step_epochs
        self.base = base
        self.base_scale = base_scale
        self.trainable_base = trainable_base
        self.reseed = reseed
        self.min_weight = min_weight
        self.tol = tol
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.check_every = check_every
        self.jit_compile = jit_compile
        self.rescale = rescale
        self.random_state = random_state
        self.verbose = verbose

    @classmethod
    def paper(cls, n_components, images=False, **overrides) -> MAFMixture:
        """The published model and training set-up (2D sets, or ``images=True``), with any setting overridden.

        Parameters
        ----------
        n_components : int
            Number of flows.
        images : bool, default=False
            The image set-up (H = 1024, 10 epochs, batch 1000, the features as given: ``rescale=None``)
            instead of the 2D one.
        **overrides
            Any constructor argument.

        Returns
        -------
        MAFMixture
            An unfitted estimator.
        """
        return cls(n_components, **{**(presets.PAPER_IMAGES if images else presets.PAPER_2D), **overrides})

    @classmethod
    def density(cls, n_components, **overrides) -> MAFMixture:
        """The best measured set-up for density (held-out log-likelihood), with any setting overridden.

        GMM-nested components (``base="gmm"``) with early stopping on held-out likelihood
        (``validation_fraction=0.3``, ``n_iter_no_change=60``): the fit starts as a full-covariance Gaussian
        mixture and keeps its flows only where they beat it on the held-out rows by two standard errors of the
        per-row gain. In ``results/density`` it is never below ``GaussianMixture(n_init=10)`` on held-out data;
        its clusters are not the defaults' (``results/defaults``).

        Parameters
        ----------
        n_components : int
            Number of flows.
        **overrides
            Any constructor argument.

        Returns
        -------
        MAFMixture
            An unfitted estimator.
        """
        return cls(n_components, **{**presets.NFMIX_DENSITY, **overrides})

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y=None, callback=None, callback_every=None) -> MAFMixture:
        """Fit the mixture to ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data; finite, and not constant in every feature.
        y : None
            Ignored; present for scikit-learn's API.
        callback : callable or None, default=None
            ``callback(model, epoch)`` at every check, with the model set to the currently best restart (its
            ``predict`` and ``score_samples`` work inside the callback), e.g. to draw the density as it trains.
        callback_every : int or None, default=None
            Call ``callback`` only at the first check at or after every multiple of this many epochs, and at
            the end of training (unless every restart stopped early); in between, the compiled loop runs on
            without returning to Python. None: every check (for EM every ``m_step_epochs``, a round trip each).
            ``nfmix.plots.DensityRecorder(X, every=100)`` wants ``callback_every=100``.

        Returns
        -------
        self : MAFMixture
            The fitted estimator.
        """
        self._validate_hyperparameters()
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be a function callback(model, epoch) or None; got {callback!r}")
        if callback_every is not None:
            _check_value(callback_every, "callback_every", numbers.Integral, min_val=1)
        self.__dict__.pop("_fitted_spec", None)  # a fit that fails leaves the model unfitted, not half-refitted
        X = self._validate_training_data(X)
        measured = FeatureScaling.fit(X)  # also refuses a feature whose range overflows
        _warn_if_float32_lost_precision(X, measured)
        scaling = measured if self.rescale == "minmax" else FeatureScaling.identity(X.shape[1])
        # Set before training, so that a callback's predictions read the user's units too.
        self.data_min_, self.data_range_ = scaling.data_min, scaling.data_range
        X = scaling.transform(X)
        if self.rescale == "minmax":
            _warn_if_rescaling_lost_precision(X)
        rng = check_random_state(self.random_state)
        self._train(X, rng, callback, callback_every)
        self.gaussian_only_ = False
        if self.base == "auto" and X.shape[1] <= AUTO_MAX_FEATURES:
            self._keep_gaussian_mixture_if_better(X, rng)
        # Only now, with the training state released, so that its memory and prediction's do not add up.
        self.labels_ = _responsibilities(self._weighted_log_prob(X)).argmax(axis=1)
        self._warn_about_training()
        return self

    def _train(self, X, rng, callback, callback_every=None) -> None:
        """Train every restart side by side and keep the best (sets the fitted attributes but ``labels_``)."""
        from nfmix.fitting import FitLoop
        from nfmix.flows import MixtureSpec
        from nfmix.train import Trainer

        spec = MixtureSpec(
            int(self.n_init),
            int(self.n_components),
            X.shape[1],
            tuple(int(h) for h in self.hidden_units),
            int(self.n_blocks),
            self.activation,
            bool(self.trainable_base),
            "diag" if self.base == "auto" else self.base,
        )
        rows, held_out = self._split_validation(len(X), rng)
        _check_rows_for_init(self.init, len(rows))  # again: the held-out rows are not there to start from
        values, partition = self._start(spec, X, rows, rng)
        validation = None
        if held_out is not None:
            X, validation = X[rows], X[held_out]
        trainer = Trainer(spec, values, self.learning_rate, int(self.batch_size), bool(self.jit_compile))
        config = self._fit_config(len(X), partition is not None, callback_every)
        loop = FitLoop(config, trainer, X, rng, partition, validation)

        def on_check(restart, epoch):
            self._live = (loop.trainer, restart)  # predict and score_samples read this row of the trainer
            callback(self, epoch)

        try:
            record = loop.run(on_check if callback is not None else None)
            final_nll = loop.final_losses()
        finally:
            self.__dict__.pop("_live", None)
        self._keep_best(spec, loop, final_nll, record)
        self._warn_if_no_weight_moved(spec, values, record)

    def _keep_gaussian_mixture_if_better(self, X, rng) -> None:
        """``base="auto"``: replace the fitted flows by the Gaussian mixture that ``base="gmm"`` starts from (its
        flows at the identity) if its AIC on the rescaled training rows ``X`` is lower; both are in
        ``history_["aic"]``."""
        from nfmix.inference import CompiledDensity
        from nfmix.initialise import initial_state

        spec = dataclasses.replace(self._fitted_spec, base="gmm")  # the flows' networks, on the GMM's bases
        try:  # GaussianMixture(n_components, n_init=n_init, random_state=random_state), whatever init the flows had
            values, _ = initial_state(spec, X, "kmeans", float(self.base_scale), rng, self._gmm_start())
        except (ValueError, np.linalg.LinAlgError) as error:
            warnings.warn(
                f'base="auto" kept the flows: the Gaussian mixture to weigh them against could not be fitted ({error})',
                RuntimeWarning,
                stacklevel=3,
            )
            return
        to_data_units = self._scaling().log_det
        gaussian = logsumexp(CompiledDensity.evaluate(spec, values, X)[:, 0, :], axis=-1).mean() + to_data_units
        flows = float(logsumexp(self._weighted_log_prob(X), axis=-1).mean())
        K, D = spec.n_components, spec.n_features
        aic = {
            "flows": 2 * self._n_parameters() - 2 * len(X) * flows,
            "gaussian mixture": 2 * _gaussian_mixture_parameters(K, D) - 2 * len(X) * float(gaussian),
        }
        self.history_["aic"] = aic
        if not aic["gaussian mixture"] < aic["flows"]:
            return
        self.gaussian_only_ = True
        self.params_ = dict(zip(spec.names(), (np.asarray(v[0]) for v in values)))
        self._fitted_spec = spec
        self.weights_ = softmax(self.params_["logits"].astype(np.float64))
        self.lower_bound_ = float(gaussian)

    def _split_validation(self, n_rows: int, rng):
        """``(training rows, held-out rows or None)`` as indices: early stopping's split."""
        if self.n_iter_no_change is None:
            return np.arange(n_rows), None
        from sklearn.model_selection import train_test_split

        n_held_out = int(np.ceil(self.validation_fraction * n_rows))
        if n_held_out < 1 or n_rows - n_held_out < max(2, self.n_components):
            raise ValueError(
                f"validation_fraction={self.validation_fraction} of {n_rows} rows leaves "
                f"{n_rows - n_held_out} to train {self.n_components} components and {n_held_out} held "
                "out; early stopping needs more rows (or n_iter_no_change=None)"
            )
        train, held_out = train_test_split(np.arange(n_rows), test_size=n_held_out, random_state=rng)
        return np.sort(train), np.sort(held_out)  # the training rows keep their order, as without a split

    def _start(self, spec, X, rows, rng):
        """``(values, partition of the training rows)``. A GMM start is fitted to every row, held-out ones too:
        it is then the ``GaussianMixture`` of the data the user gave, and the held-out rows decide only whether
        the flows improve on it (scored on rows it saw, it is the harder score to beat). Other bases are placed
        on the training rows alone."""
        from nfmix.initialise import gaussian_mixture_labels, initial_state

        init = self.init if isinstance(self.init, str) else np.asarray(self.init)
        if spec.base == "gmm":
            # init="gmm" starts from the very mixture base="gmm" fits (its clusters are the partition)
            start = "kmeans" if isinstance(init, str) and init == "gmm" else init
            values, partition = initial_state(spec, X, start, float(self.base_scale), rng, self._gmm_start())
            return values, (partition[:, rows] if partition is not None else None)
        if isinstance(init, str) and init == "gmm":
            init = gaussian_mixture_labels(X[rows], spec.n_components, rng, self._gmm_start())
        elif not isinstance(init, str):
            init = init[rows]
        return initial_state(spec, X[rows], init, float(self.base_scale), rng)

    def _gmm_start(self):
        """How ``base="gmm"`` (and ``"auto"``'s comparison) fits its Gaussian mixture: this estimator's ``n_init``
        and integer ``random_state`` (None draws a seed from the fit's generator), in the data's units."""
        from nfmix.initialise import GmmStart

        seed = self.random_state if isinstance(self.random_state, numbers.Integral) else None
        return GmmStart(self._scaling(), int(self.n_init), None if seed is None else int(seed))

    def _fit_config(self, n_rows: int, has_partition: bool, callback_every: int | None = None):
        """Every setting the fitting loop reads, with its default resolved here, once."""
        from nfmix.fitting import FitConfig

        if self.algorithm != "mle":
            check_every = int(self.m_step_epochs)
        else:
            check_every = int(self.check_every or (100 if self.batch_size >= n_rows else 1))
        init_epochs = self._init_epochs() if has_partition else 0
        # The race ends on a check boundary after the warm-up, so that it changes no check of the finalists.
        after_warm_up = max(0.0, RACE_FRACTION * self.epochs - init_epochs)
        race_epochs = init_epochs + max(1, int(np.ceil(after_warm_up / check_every))) * check_every
        return FitConfig(
            algorithm=self.algorithm,
            epochs=int(self.epochs),
            check_every=check_every,
            init_epochs=init_epochs,
            learning_rate=float(self.learning_rate),
            reseed=bool(self.reseed),
            min_weight=float(self.min_weight if self.min_weight is not None else 0.1 / self.n_components),
            tol=None if self.tol is None else float(self.tol),
            n_iter_no_change=None if self.n_iter_no_change is None else int(self.n_iter_no_change),
            verbose=int(self.verbose),
            callback_every=None if callback_every is None else int(callback_every),
            n_init_kept=None if self.n_init_kept is None else int(self.n_init_kept),
            race_epochs=race_epochs,
        )

    def _warn_if_no_weight_moved(self, spec, start_values, record) -> None:
        """A step below the weights' float32 resolution is lost in rounding: then training did nothing."""
        if record.best_validation_nll is not None or any(
            event["restart"] == self.best_restart_ for event in record.diverged + record.reseeds
        ):
            return  # restored (early stopping, divergence) or re-drawn weights say nothing about the step size
        kernels = [(i, name) for i, name in enumerate(spec.names()) if "/kernel_" in name]
        if all(np.array_equal(start_values[i][self.best_restart_], self.params_[name]) for i, name in kernels):
            warnings.warn(
                f"training changed no network weight: steps of learning_rate={self.learning_rate} are "
                "lost in the float32 rounding of the weights; raise learning_rate (the default is 1e-2)",
                RuntimeWarning,
                stacklevel=4,
            )

    def _validate_hyperparameters(self) -> None:
        integral, real = numbers.Integral, numbers.Real
        for name in ("n_components", "n_init", "n_blocks", "epochs", "batch_size", "m_step_epochs"):
            _check_number(self, name, integral, min_val=1)
        for name in ("learning_rate", "base_scale"):
            _check_number(self, name, real, min_val=0, include_boundaries="neither")
            if not np.isfinite(getattr(self, name)):
                raise ValueError(f"{name} must be finite; got {getattr(self, name)!r}")
        if self.learning_rate < FLOAT32_TINY:
            raise ValueError(
                f"learning_rate={self.learning_rate!r} underflows float32, the training arithmetic "
                f"(smallest normal {FLOAT32_TINY:.2g}): no weight would change"
            )
        if self.base_scale < MIN_BASE_SCALE:
            raise ValueError(
                f"base_scale={self.base_scale!r} is too small for float32 density arithmetic: its "
                f"square underflows (use at least {MIN_BASE_SCALE:g})"
            )
        _check_number(self, "verbose", integral, min_val=0)
        if self.min_weight is not None:
            _check_number(self, "min_weight", real, min_val=0, max_val=1, include_boundaries="left")
        if self.tol is not None:
            _check_number(self, "tol", real, min_val=0)
        for name in ("min_weight", "tol"):  # check_scalar lets NaN through: comparisons with it are false
            if getattr(self, name) is not None and not np.isfinite(getattr(self, name)):
                raise ValueError(f"{name} must be finite or None; got {getattr(self, name)!r}")
        if self.check_every is not None:
            _check_number(self, "check_every", integral, min_val=1)
        if self.n_iter_no_change is not None:
            _check_number(self, "n_iter_no_change", integral, min_val=1)
        if self.n_init_kept is not None:
            _check_number(self, "n_init_kept", integral, min_val=1)
        _check_number(self, "validation_fraction", real, min_val=0, max_val=1, include_boundaries="neither")
        self._validate_init()
        for name, options in (("algorithm", ALGORITHMS), ("activation", ACTIVATION_NAMES), ("base", BASES)):
            if not isinstance(getattr(self, name), str) or getattr(self, name) not in options:
                raise ValueError(f"{name} must be one of {', '.join(map(repr, options))}; got {getattr(self, name)!r}")
        if self.rescale is not None and not (isinstance(self.rescale, str) and self.rescale == "minmax"):
            raise ValueError(f"rescale must be 'minmax' or None; got {self.rescale!r}")
        units = self.hidden_units
        if (
            not isinstance(units, (tuple, list))
            or not units
            or not all(isinstance(h, numbers.Integral) and not isinstance(h, bool) and h >= 1 for h in units)
        ):
            raise ValueError(f"hidden_units must be a non-empty tuple of positive integers; got {units!r}")
        for name in ("trainable_base", "reseed", "jit_compile"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise TypeError(f"{name} must be True or False; got {getattr(self, name)!r}")

    def _validate_init(self) -> None:
        if isinstance(self.init, str):
            if self.init not in INITS:
                raise ValueError(
                    f"init must be one of {', '.join(map(repr, INITS))} or an array of labels; got {self.init!r}"
                )
        else:
            labels = np.asarray(self.init)
            if (
                labels.ndim != 1
                or not np.issubdtype(labels.dtype, np.integer)
                or labels.min(initial=0) < 0
                or labels.max(initial=0) >= self.n_components
            ):
                raise ValueError(
                    f"init as labels must be a 1-D integer array with values in [0, n_components="
                    f"{self.n_components}); got dtype {labels.dtype}, shape {labels.shape}"
                )
        if self.init_epochs is not None:
            _check_number(self, "init_epochs", numbers.Integral, min_val=0, max_val=self.epochs)
            if isinstance(self.init, str) and self.init == "random" and self.init_epochs > 0:
                raise ValueError('init_epochs > 0 needs a starting partition; init="random" has none')

    def _init_epochs(self) -> int:
        if self.init_epochs is not None:
            return int(self.init_epochs)
        return 0 if isinstance(self.init, str) and self.init in ("kmeans", "random") else int(self.epochs) // 4

    def _validate_training_data(self, X) -> np.ndarray:
        _refuse_text(X)
        X = validate_data(self, X, dtype=FLOAT_DTYPES, ensure_min_samples=2)
        if len(X) < self.n_components:
            raise ValueError(f"n_samples={len(X)} should be >= n_components={self.n_components}")
        if not isinstance(self.init, str) and len(self.init) != len(X):
            raise ValueError(f"init has {len(self.init)} labels but X has {len(X)} rows")
        _check_rows_for_init(self.init, len(X))
        if (
            X.max(axis=0) == X.min(axis=0)
        ).all():  # some constant features are fine (image borders): scales are floored
            raise ValueError("every feature of X is constant: there is no spread to fit a density to")
        return X

    def _keep_best(self, spec, loop, final_nll, record) -> None:
        """Keep the restart with the best final likelihood: first among those that never diverged."""
        diverged = np.isin(np.arange(spec.n_restarts), [e["restart"] for e in record.diverged])
        finalist = ~np.isin(np.arange(spec.n_restarts), [e["restart"] for e in record.pruned])
        finite = np.isfinite(final_nll) & finalist  # a restart that lost the race is never the fitted model
        if not finite.any():
            base = (
                f", or raise base_scale (now {self.base_scale})"
                if isinstance(self.init, str) and self.init == "random"
                else ""
            )
            raise ValueError(
                f"every restart diverged: the likelihood is NaN or infinite even at the last weights "
                f"with a finite loss. Lower learning_rate (now {self.learning_rate}){base}."
            )
        eligible = finite & ~diverged if (finite & ~diverged).any() else finite
        if not (finite & ~diverged).any():
            warnings.warn(
                "every restart diverged; the model keeps the best of their last weights with a finite loss",
                RuntimeWarning,
                stacklevel=3,
            )
        # Early stopping ranks restarts by held-out likelihood (FitLoop._ranking), as they are kept at their best.
        rank = record.ranking if record.ranking is not None else final_nll
        best = int(np.argmin(np.where(eligible, rank, np.inf)))
        # The loop's losses are of the rescaled data; the fitted attributes give them in the data's units.
        to_data_units = -self._scaling().log_det
        final_nll = final_nll + to_data_units
        self.params_ = dict(zip(spec.names(), loop.restart_values(best)))
        self._fitted_spec = spec.with_restarts(1)
        self.weights_ = softmax(self.params_["logits"].astype(np.float64))
        self.best_restart_ = best
        self.restart_losses_ = final_nll
        self.lower_bound_ = float(-final_nll[best])
        nll = np.concatenate(record.nll) + to_data_units
        self.history_ = {
            "start_loss": float(record.start_nll[best] + to_data_units),
            "start_loss_per_restart": (record.start_nll + to_data_units).tolist(),
            "loss": nll[:, best].tolist(),
            "loss_per_restart": nll.tolist(),
            "reseeds": record.reseeds,
            "diverged": record.diverged,
            "pruned": record.pruned,
            "e_steps": record.e_steps,
            "compiled_calls": record.compiled_calls,
            "seconds": record.seconds,
        }
        if record.best_validation_nll is not None:
            held_out = np.stack(record.validation_nll) + to_data_units
            self.history_.update(
                validation_loss=held_out[:, best].tolist(),
                validation_loss_per_restart=held_out.tolist(),
                validation_epochs=record.validation_epochs,
                stopped=record.stopped,
            )
            scores = -held_out[:, best]
            self.validation_scores_ = scores[np.isfinite(scores)].tolist()  # up to where the kept restart stopped
            self.best_validation_score_ = float(-(record.best_validation_nll[best] + to_data_units))
        else:
            self.__dict__.pop("validation_scores_", None)
            self.__dict__.pop("best_validation_score_", None)
        if self.algorithm != "mle":
            objective = np.concatenate(record.objective) + to_data_units
            self.history_["em_objective"] = objective[:, best].tolist()
        self.n_iter_ = record.epochs
        self.converged_ = record.converged

    def _warn_about_training(self) -> None:
        # Measured from the starting weights, not the first epoch: a step too large can blow up within it.
        first, last = self.history_["start_loss"], self.restart_losses_[self.best_restart_]
        rescaled = first + self._scaling().log_det  # the tolerance must not depend on the data's units
        if np.isfinite(first) and last > first + 1e-3 * max(1.0, abs(rescaled)):
            self.converged_ = False
            reseeds = sum(e["restart"] == self.best_restart_ for e in self.history_["reseeds"])
            cause = (
                f" (or its {reseeds} re-seeds of components below min_weight moved it away from a better start)"
                if reseeds
                else ""
            )
            warnings.warn(
                f"the kept restart's mean negative log-likelihood rose over training, from {first:.4g} at "
                f"its start to {last:.4g}: learning_rate={self.learning_rate} is likely too large{cause}",
                RuntimeWarning,
                stacklevel=3,
            )
        elif self.tol is not None and not self.converged_:
            warnings.warn(
                f"MAFMixture did not reach tol={self.tol} within epochs={self.epochs}; raise epochs or tol",
                ConvergenceWarning,
                stacklevel=3,
            )

    # ------------------------------------------------------------------ inference
    def _parameters(self):
        """``(spec, values)`` of the model that inference reads: the fitted one, or the live one in a callback."""
        live = self.__dict__.get("_live")
        if live is not None:
            trainer, restart = live
            return trainer.spec.with_restarts(1), [v[None] for v in trainer.restart_values(restart)]
        check_is_fitted(self)
        spec = self._fitted_spec
        return spec, [np.asarray(self.params_[name])[None] for name in spec.names()]

    def _scaling(self) -> FeatureScaling:
        return FeatureScaling(self.data_min_, self.data_range_)

    def _validate_inference_data(self, X) -> np.ndarray:
        """``X`` checked against the fit, and rescaled as the training data were (float32)."""
        if self.__dict__.get("_live") is None:
            check_is_fitted(self)
        _refuse_text(X)
        X = self._scaling().transform(validate_data(self, X, dtype=FLOAT_DTYPES, reset=False))
        _check_magnitude(X)
        return X

    def _weighted_log_prob(self, X) -> np.ndarray:
        """:meth:`weighted_log_prob` of rescaled rows, in the user's units (float64)."""
        from nfmix.inference import CompiledDensity

        spec, values = self._parameters()
        weighted = CompiledDensity.evaluate(spec, values, X)[:, 0, :]
        if np.isnan(weighted).any() or np.isposinf(weighted).any():
            row = np.flatnonzero(np.isnan(weighted).any(axis=1) | np.isposinf(weighted).any(axis=1))[0]
            raise ValueError(
                f"the log-density of row {row} is not a number: its values are beyond what the model's "
                "float32 arithmetic can hold, relative to the training data's range"
            )
        return weighted.astype(np.float64) + self._scaling().log_det

    def weighted_log_prob(self, X) -> np.ndarray:
        """``log pi_k + log p_k(x)`` of every row and component.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_components)
            Its log-sum-exp over components is :meth:`score_samples`; its arg-max is :meth:`predict`.
        """
        return self._weighted_log_prob(self._validate_inference_data(X))

    def predict_proba(self, X) -> np.ndarray:
        """Responsibilities ``p(k | x)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_components)
            Rows sum to 1.
        """
        return _responsibilities(self.weighted_log_prob(X))

    def predict(self, X) -> np.ndarray:
        """The most probable component of each row, ``argmax_k log pi_k + log p_k(x)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
            Component indices in ``0 .. n_components - 1``.
        """
        return self.predict_proba(X).argmax(axis=1)

    def score_samples(self, X) -> np.ndarray:
        """Log-density ``log p(x)`` of each row.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
            Natural-log density; ``-inf`` where a row lies beyond every component's reach.
        """
        return logsumexp(self.weighted_log_prob(X), axis=-1)

    def score(self, X, y=None) -> float:
        """Mean log-likelihood per row.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : None
            Ignored.

        Returns
        -------
        float
            ``mean(score_samples(X))``, in nats.
        """
        return float(self.score_samples(X).mean())

    def sample(self, n_samples=1, random_state=None):
        """Draw points from the fitted mixture.

        Parameters
        ----------
        n_samples : int, default=1
        random_state : int, RandomState instance or None, default=None

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
        labels : ndarray of shape (n_samples,)
            The component each point was drawn from.
        """
        from nfmix._tf import tf
        from nfmix.flows import FlowMixture

        if isinstance(n_samples, (bool, np.bool_)):
            raise TypeError(f"n_samples must be a number, not a boolean; got {n_samples!r}")
        check_scalar(n_samples, "n_samples", numbers.Integral, min_val=1)
        spec, values = self._parameters()
        flows = FlowMixture(spec, [tf.constant(np.asarray(v, np.float32)) for v in values])  # rescaled units
        # The fitted mixture's weights, not n_components: set_params after fit must not change what is drawn.
        weights = softmax(flows.logits.numpy()[0].astype(np.float64))
        rng = check_random_state(random_state)
        labels = rng.choice(len(weights), size=n_samples, p=weights)
        seed = tf.constant(rng.randint(2**31 - 1, size=2), tf.int32)  # a [2] seed makes TFP sample statelessly
        draws = flows.components().sample(n_samples, seed=seed).numpy()  # [n, 1, K, D]
        # Back to the data's units in float64, where data far from zero keep their precision.
        draws = self._scaling().inverse_transform(draws[np.arange(n_samples), 0, labels])
        return draws, labels

    def _n_parameters(self) -> int:
        """Free parameters: K-1 weights, the unmasked network weights and biases, and the bases that were fitted
        (a GMM base's means and covariances always; a diagonal base's locations if trained). A Gaussian mixture
        kept by ``base="auto"`` (``gaussian_only_``) counts its weights, means and covariances alone."""
        spec = self._parameters()[0]
        K, D = spec.n_components, spec.n_features
        if self.__dict__.get("gaussian_only_") and self.__dict__.get("_live") is None:
            return _gaussian_mixture_parameters(K, D)  # its flows are the identity, not fitted
        per_component = sum(int(m.sum()) for m in spec.masks()) + sum(spec.layer_sizes[1:])
        networks = per_component * spec.n_blocks * K
        if spec.base == "gmm":
            return networks + _gaussian_mixture_parameters(K, D)
        return networks + K - 1 + (K * D if spec.trainable_base else 0)

    def bic(self, X) -> float:
        """Bayesian information criterion on ``X`` (lower is better)."""
        log_density = self.score_samples(X)
        return float(-2 * log_density.sum() + self._n_parameters() * np.log(len(log_density)))

    def aic(self, X) -> float:
        """Akaike information criterion on ``X`` (lower is better)."""
        return float(-2 * self.score_samples(X).sum() + 2 * self._n_parameters())

    def flow_mixture(self, trainable: bool = False):
        """The fitted model as a :class:`nfmix.flows.FlowMixture` with one restart (batch shape ``[1]``).

        Parameters
        ----------
        trainable : bool, default=False
            Hold the parameters in fresh ``tf.Variable`` copies (e.g. to take gradients) instead of constants.
        """
        from nfmix._tf import tf
        from nfmix.flows import FlowMixture

        spec, values = self._parameters()
        make = tf.Variable if trainable else tf.constant
        scaling = self._scaling()
        return FlowMixture(
            spec, [make(np.asarray(v, np.float32)) for v in values], None if scaling.is_identity else scaling.bijector()
        )

    def distribution(self):
        """The fitted mixture as a TFP distribution (``MixtureSameFamily`` of MAF-transformed Gaussians)."""
        from nfmix._tf import tfd

        return tfd.BatchReshape(self.flow_mixture().mixture(), batch_shape=[])

    # ------------------------------------------------------------------ persistence
    def save(self, path) -> None:
        """Write the fitted model to the folder ``path``, atomically: a crash leaves the old or the new model there,
        and the folder's other files are kept (see :mod:`nfmix.persistence`)."""
        persistence.save_model(self, path)

    @classmethod
    def load(cls, path) -> MAFMixture:
        """Read a model written by :meth:`save`; refuses an inconsistent or edited one, naming the path and problem."""
        return persistence.load_model(cls, path)

    def __getstate__(self):
        state = dict(super().__getstate__())  # a copy: the base may hand back the live __dict__ itself
        state.pop("_live", None)  # a model pickled inside a fit callback drops the training state
        return state

    def __sklearn_is_fitted__(self) -> bool:
        """Fitted once a fit has finished (``n_features_in_`` alone is set as soon as a fit starts)."""
        return hasattr(self, "_fitted_spec")


def _gaussian_mixture_parameters(n_components: int, n_features: int) -> int:
    """Free parameters of a full-covariance Gaussian mixture: weights, means and covariances."""
    return n_components - 1 + n_components * (n_features + n_features * (n_features + 1) // 2)


def _check_rows_for_init(init, n_rows: int) -> None:
    if isinstance(init, str) and init == "spectral" and n_rows < SPECTRAL_NEIGHBOURS:
        raise ValueError(
            f'init="spectral" builds a {SPECTRAL_NEIGHBOURS}-nearest-neighbour graph and needs at '
            f'least {SPECTRAL_NEIGHBOURS} rows to start from; there are {n_rows} (use init="kmeans")'
        )


def _responsibilities(weighted: np.ndarray) -> np.ndarray:
    """``p(k | x)`` from ``log pi_k + log p_k(x)``; a row with zero density everywhere has none."""
    far = ~np.isfinite(weighted).any(axis=1)
    if far.any():
        raise ValueError(
            f"row {np.flatnonzero(far)[0]} of X has zero density under every component (it lies far "
            "outside the training data), so its cluster probabilities are undefined"
        )
    return softmax(weighted, axis=-1)


def _refuse_text(X) -> None:
    """Refuse strings, even of digits, as ``check_array(dtype="numeric")`` does; NumPy would parse them silently.

    Object arrays (and DataFrame columns) of numbers are accepted, as scikit-learn accepts them.
    """
    columns = X.items() if hasattr(X, "columns") and hasattr(X, "dtypes") else None  # a DataFrame
    if columns is None:
        array = X if isinstance(X, np.ndarray) else np.asarray(X, dtype=object)
        columns = [(None, array.ravel())] if array.dtype.kind in "OUS" else []
    for name, values in columns:
        values = np.asarray(values)
        if values.dtype.kind in "US" or (values.dtype.kind == "O" and any(isinstance(v, (str, bytes)) for v in values)):
            where = f" (column {name!r})" if name is not None else ""
            raise ValueError(
                f"X holds strings{where}: MAFMixture does not parse text into numbers; convert X "
                "explicitly (e.g. X.astype(float)) if its strings are numbers"
            )


def _first_coarse_feature(steps: np.ndarray, varying: np.ndarray) -> int | None:
    """The first varying feature with fewer than MIN_FLOAT32_STEPS float32 steps across its spread, or None."""
    coarse = np.flatnonzero(varying & (steps < MIN_FLOAT32_STEPS))
    return int(coarse[0]) if coarse.size else None


def _warn_if_float32_lost_precision(X: np.ndarray, scaling: FeatureScaling) -> None:
    """Warn when float32 data are so large for their spread that few distinct values are left in a feature."""
    if X.dtype != np.float32:
        return
    magnitude = np.maximum(np.abs(scaling.data_min), np.abs(scaling.data_min + scaling.data_range))
    steps = scaling.data_range / np.spacing(magnitude.astype(np.float32))
    j = _first_coarse_feature(steps, varying=X.max(axis=0) > X.min(axis=0))
    if j is not None:
        warnings.warn(
            f"feature {j} of X spans only {steps[j]:.0f} float32 steps ({scaling.data_min[j]:.7g} to "
            f"{scaling.data_min[j] + scaling.data_range[j]:.7g}): float32 has rounded its values away. Centre "
            "X in float64 (X - X.mean(axis=0)) before converting it to float32, or pass float64",
            RuntimeWarning,
            stacklevel=3,
        )


def _warn_if_rescaling_lost_precision(X: np.ndarray, max_rows: int = 10_000) -> None:
    """Warn when a far outlier squeezes a feature's bulk into a few float32 steps of the rescaled [0, 1]."""
    probe = X[np.linspace(0, len(X) - 1, min(len(X), max_rows)).astype(int)]  # quantiles need no copy of all rows
    low, middle, high = np.percentile(probe, [25, 50, 75], axis=0)
    steps = (high - low) / np.spacing(np.abs(middle).astype(np.float32))
    j = _first_coarse_feature(steps, varying=high > low)
    if j is not None:
        warnings.warn(
            f"feature {j} of X: its middle half spans only {steps[j]:.0f} float32 steps once the feature is "
            f"rescaled to [0, 1] by its range: a few far values (outliers?) squeeze the rest together. "
            "Remove them or transform the feature (e.g. a logarithm) before fitting",
            RuntimeWarning,
            stacklevel=3,
        )


def _check_magnitude(X: np.ndarray) -> None:
    largest = max(abs(float(X.max())), abs(float(X.min()))) if X.size else 0.0  # no |X| copy of a large data set
    if not largest <= MAX_ABS_VALUE:  # also inf, from a rescaled float64 value beyond float32
        raise ValueError(
            f"X has values up to {largest:.3g} times the training data's range from its minimum, beyond "
            f"what float32 density arithmetic holds ({MAX_ABS_VALUE:.0e})"
        )


def _check_number(estimator, name: str, kind, **bounds) -> None:
    """:func:`_check_value` on a hyperparameter."""
    _check_value(getattr(estimator, name), name, kind, **bounds)


def _check_value(value, name: str, kind, **bounds) -> None:
    """``check_scalar``, refusing booleans: ``True`` is an ``int`` to Python, never a count."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a number, not a boolean; got {value!r}")
    check_scalar(value, name, kind, **bounds)
