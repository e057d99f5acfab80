"""The baseline numbers published with the original code (purity / ARI / NMI / accuracy, scikit-learn, n_init=10)."""

import pandas as pd

_ROWS = """
mnist random .113 .000 .000 .106
mnist kmeans .580 .365 .485 .542
mnist gmm .410 .195 .329 .377
mnist_pca100 random .113 .000 .000 .105
mnist_pca100 kmeans .581 .362 .483 .543
mnist_pca100 gmm .580 .345 .532 .537
mnist5 random .220 .000 .000 .203
mnist5 kmeans .881 .733 .710 .881
mnist5 gmm .568 .264 .351 .568
mnist5_pca100 random .220 .000 .000 .205
mnist5_pca100 kmeans .881 .733 .710 .881
mnist5_pca100 gmm .865 .677 .736 .865
fmnist random .107 .000 .000 .106
fmnist kmeans .555 .348 .512 .474
fmnist gmm .559 .373 .537 .540
fmnist_pca100 random .105 .000 .000 .105
fmnist_pca100 kmeans .576 .374 .512 .540
fmnist_pca100 gmm .553 .371 .573 .503
cifar10 random .106 .000 .000 .106
cifar10 kmeans .221 .042 .079 .206
cifar10 gmm .207 .023 .057 .192
cifar10_pca100 random .106 .000 .000 .106
cifar10_pca100 kmeans .221 .042 .079 .206
cifar10_pca100 gmm .298 .094 .162 .287
"""


def published_baselines() -> pd.DataFrame:
    """One row per (variant, method) with the published purity, ari, nmi and accuracy."""
    rows = [line.split() for line in _ROWS.strip().splitlines()]
    table = pd.DataFrame(rows, columns=["variant", "method", "purity", "ari", "nmi", "accuracy"])
    return table.astype({m: float for m in ("purity", "ari", "nmi", "accuracy")})
