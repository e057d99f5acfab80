"""MAFMixture under scikit-learn's own contract: its estimator checks, clone, Pipeline and GridSearchCV."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from nfmix import MAFMixture, load_dataset

# Small enough to train in well under a second; no XLA, because every check brings data of a new shape and
# each shape would pay for a compile.
TINY = dict(hidden_units=(4,), n_init=1, epochs=20, m_step_epochs=5, jit_compile=False, random_state=0)


# Every check applies and passes: no check is exempted. The GMM-nested base with early stopping is checked too, and
# the flows trained on the features as given (the image presets' rescale=None).
@parametrize_with_checks(
    [
        MAFMixture(2, **TINY),
        MAFMixture(2, base="gmm", n_iter_no_change=2, **TINY),
        MAFMixture(2, base="diag", rescale=None, **TINY),
    ]
)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def moons():
    return load_dataset("moons")


def test_clone_copies_the_parameters_not_the_fit(moons):
    X, _ = moons
    model = MAFMixture(2, **TINY).fit(X)
    copy = clone(model)
    assert copy.get_params() == model.get_params() and not hasattr(copy, "params_")


def test_a_pipeline_with_a_scaler_fits_and_scores(moons):
    X, y = moons
    pipeline = make_pipeline(StandardScaler(), MAFMixture(2, **TINY)).fit(X * 100 + 5)
    assert pipeline.predict(X * 100 + 5).shape == y.shape and np.isfinite(pipeline.score(X * 100 + 5))


def test_grid_search_picks_by_mean_log_likelihood(moons):
    X, _ = moons
    search = GridSearchCV(MAFMixture(2, **TINY), {"n_components": [1, 2], "hidden_units": [(4,), (8,)]}, cv=2)
    search.fit(X)
    assert set(search.cv_results_["params"][0]) == {"n_components", "hidden_units"}
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    # The first split's score of the first candidate is that model's mean log-likelihood on the held-out half.
    (train, test), params = next(iter(KFold(2).split(X))), search.cv_results_["params"][0]
    held_out = clone(MAFMixture(2, **TINY)).set_params(**params).fit(X[train]).score(X[test])
    assert search.cv_results_["split0_test_score"][0] == pytest.approx(held_out, rel=1e-5)
