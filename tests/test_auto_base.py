"""``base="auto"``, the default: the flows, or the Gaussian mixture they are weighed against, by AIC."""

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.mixture import GaussianMixture
from sklearn.preprocessing import StandardScaler

from nfmix import MAFMixture, load_dataset


@pytest.fixture(scope="module")
def iris():
    return StandardScaler().fit_transform(load_iris(return_X_y=True)[0])


@pytest.fixture(scope="module")
def iris_model(iris):
    return MAFMixture(3, n_init=3, epochs=100, random_state=0).fit(iris)


def test_where_the_flows_do_not_pay_for_their_parameters_the_model_is_the_gaussian_mixture(iris, iris_model):
    gmm = GaussianMixture(3, n_init=3, random_state=0).fit(iris)
    aic = iris_model.history_["aic"]
    assert iris_model.gaussian_only_ and aic["gaussian mixture"] < aic["flows"]
    np.testing.assert_array_equal(iris_model.predict(iris), gmm.predict(iris))
    np.testing.assert_allclose(iris_model.score_samples(iris), gmm.score_samples(iris), atol=1e-4)
    # Its AIC counts the mixture's own parameters, as scikit-learn's does: its flows are the identity.
    assert iris_model._n_parameters() == gmm._n_parameters()
    np.testing.assert_allclose(iris_model.aic(iris), gmm.aic(iris), rtol=1e-5)
    np.testing.assert_allclose(aic["gaussian mixture"], gmm.aic(iris), rtol=1e-5)


def test_where_the_flows_pay_for_their_parameters_they_are_kept():
    X, _ = load_dataset("moons")
    model = MAFMixture(2, n_init=2, epochs=1000, random_state=0).fit(X)
    aic = model.history_["aic"]
    assert not model.gaussian_only_ and aic["flows"] < aic["gaussian mixture"]
    assert model._fitted_spec.base == "diag"
    np.testing.assert_allclose(aic["flows"], model.aic(X), rtol=1e-5)


def test_a_kept_gaussian_mixture_saves_and_loads(iris, iris_model, tmp_path):
    iris_model.save(tmp_path / "model")
    loaded = MAFMixture.load(tmp_path / "model")
    assert loaded.gaussian_only_ and loaded.base == "auto" and loaded._fitted_spec.base == "gmm"
    np.testing.assert_array_equal(loaded.score_samples(iris), iris_model.score_samples(iris))
    assert loaded._n_parameters() == iris_model._n_parameters()


def test_a_gaussian_mixture_that_cannot_be_fitted_leaves_the_flows_and_says_so():
    X = np.random.RandomState(0).rand(300, 3) * 1e9
    X[:, 2] = X[:, 0] + X[:, 1]  # a singular covariance in the data's own units
    with pytest.warns(RuntimeWarning, match='base="auto" kept the flows: the Gaussian mixture'):
        model = MAFMixture(2, n_init=2, epochs=20, random_state=0).fit(X)
    assert not model.gaussian_only_ and model._fitted_spec.base == "diag" and np.isfinite(model.score(X))


def test_auto_is_diag_beyond_the_features_a_full_covariance_affords():
    X = np.random.RandomState(0).rand(40, 101)
    model = MAFMixture(2, n_init=1, epochs=2, random_state=0).fit(X)
    assert not model.gaussian_only_ and "aic" not in model.history_ and model._fitted_spec.base == "diag"


def test_base_is_validated_with_auto_among_the_options():
    with pytest.raises(ValueError, match="base must be one of 'auto', 'diag', 'gmm'"):
        MAFMixture(2, base="full").fit(np.random.RandomState(0).rand(20, 2))
