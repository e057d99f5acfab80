import numpy as np
import pandas as pd
import pytest

from nfmix.stats import against_best_baseline, compare, interval, paired_test
from nfmix.sweep import summarise


def test_interval_is_the_student_t_interval():
    low, high = interval([1.0, 2.0, 3.0, 4.0])
    assert (low + high) / 2 == pytest.approx(2.5)
    assert high - low == pytest.approx(2 * 3.182446 * np.std([1, 2, 3, 4], ddof=1) / 2, rel=1e-5)
    assert np.isnan(interval([1.0])[0])


def test_paired_test_tells_a_consistent_gain_from_noise():
    rng = np.random.RandomState(0)
    base = rng.rand(10)
    assert paired_test(base + 0.1, base) < 0.01
    assert paired_test(base + rng.normal(0, 0.1, 10), base) > 0.05
    assert paired_test(base, base) == 1.0
    with pytest.raises(ValueError, match="equal"):
        paired_test([1, 2], [1])


def test_summary_counts_each_seed_once_and_compare_pairs_by_seed():
    rows = []
    for seed in range(6):
        for setup in ("paper", "nfmix"):  # each run also scores the same seeded baseline
            rows.append(
                dict(
                    dataset="moons",
                    method=f"maf_mixture ({setup})",
                    seed=seed,
                    loss=-seed,
                    purity=0.9,
                    ari=0.5 + 0.05 * seed + (0.3 if setup == "nfmix" else 0),
                    nmi=0.5,
                    accuracy=0.9,
                )
            )
            rows.append(dict(dataset="moons", method="gmm", seed=seed, purity=0.8, ari=0.47, nmi=0.4, accuracy=0.8))
    tidy = pd.DataFrame(rows)
    summary = summarise(tidy).set_index("method")
    assert summary.loc["gmm", "n"] == 6 and summary.loc["maf_mixture (nfmix)", "n"] == 6
    assert "[" in summary.loc["maf_mixture (nfmix)", "ari"]  # the 95% interval
    test = compare(tidy.assign(variant=tidy["dataset"]), "maf_mixture (nfmix)", "gmm")
    assert test.loc[0, "n"] == 6 and test.loc[0, "p (Wilcoxon)"] < 0.05
    verdict = against_best_baseline(tidy.assign(variant=tidy["dataset"]), "maf_mixture (nfmix)")
    assert verdict.loc[0, "best baseline"] == "gmm" and verdict.loc[0, "verdict"] == "win"
    tiny_gain = tidy.assign(
        variant=tidy["dataset"],
        ari=tidy["ari"].where(tidy["method"] != "maf_mixture (nfmix)", 0.471 + 0.0001 * tidy["seed"]),
    )
    assert against_best_baseline(tiny_gain, "maf_mixture (nfmix)").loc[0, "verdict"] == "tie"
