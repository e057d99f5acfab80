"""Figures: density maps (and GIFs of them during training), clusters, decision regions, loss, contingency, samples.

Every helper draws on an ``ax`` it is given (or a new one) with a title and axis labels, and returns the axes.
:func:`savefig` writes a figure only when an output folder is given, so notebooks stay clean by default.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np


def _axes(ax, figsize=(5, 4.2)):
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def savefig(fig, name: str, out_dir=None, dpi: int = 110) -> Path | None:
    """Save ``fig`` as ``out_dir/name`` when ``out_dir`` is set; returns the path written (or None)."""
    if not out_dir:
        return None
    path = Path(out_dir) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path


def cluster_colours(n: int):
    """A discrete colour map with one clearly different tab10 colour per cluster (0 blue, 1 orange, ...)."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    return ListedColormap(plt.cm.tab10.colors[: max(int(n), 1)])


def density_norm(density, decades: float = 3.0):
    """A log colour scale over the top ``decades`` of the density, so thin arms show beside dense cores."""
    from matplotlib.colors import LogNorm

    top = float(np.max(density))
    return LogNorm(vmin=top * 10**-decades, vmax=top) if top > 0 else None


def draw_density(ax, xs, ys, density, title):
    """One density map on a log scale (values below its floor take the floor's colour)."""
    norm = density_norm(density)
    floor = norm.vmin if norm is not None else 0.0
    mesh = ax.pcolormesh(xs, ys, np.maximum(density, floor), cmap="inferno", shading="auto", norm=norm)
    ax.set(title=title, xlabel="$x_1$", ylabel="$x_2$")
    return mesh


def density_grid(score_samples, X, resolution: int = 100, margin: float = 0.0):
    """``(xs, ys, density)`` of a model's density on a ``resolution``-square grid over the data's range."""
    low, high = X.min(axis=0) - margin, X.max(axis=0) + margin
    xs, ys = np.linspace(low[0], high[0], resolution), np.linspace(low[1], high[1], resolution)
    grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2).astype(np.float32)
    return xs, ys, np.exp(score_samples(grid)).reshape(resolution, resolution)


def plot_density(score_samples, X, ax=None, title="density $p(\\mathbf{x})$", resolution: int = 100):
    """The density with the ``inferno`` map, as the paper draws it, on a log scale over three decades."""
    ax = _axes(ax)
    mesh = draw_density(ax, *density_grid(score_samples, X, resolution), title=title)
    ax.figure.colorbar(mesh, ax=ax, label="density (log scale)")
    return ax


def plot_points(X, labels=None, ax=None, title="data", label_name="cluster"):
    """A 2D scatter, coloured by ``labels`` when given (the colours of :func:`cluster_colours`)."""
    ax = _axes(ax)
    if labels is None:
        ax.scatter(X[:, 0], X[:, 1], s=6)
    else:
        labels = np.asarray(labels)
        n = int(labels.max()) + 1
        points = ax.scatter(X[:, 0], X[:, 1], c=labels, s=6, cmap=cluster_colours(n), vmin=-0.5, vmax=n - 0.5)
        if n <= 10:
            ax.legend(*points.legend_elements(), title=label_name, fontsize=7, loc="best")
    ax.set(title=title, xlabel="$x_1$", ylabel="$x_2$")
    return ax


def plot_decision_regions(
    predict, X, labels=None, ax=None, title="decision regions", low=-0.25, high=1.25, step=0.01, n_clusters=None
):
    """The cluster each point of a grid on ``[low, high]^2`` is assigned to, with the data over it (as the paper).

    Regions and points use the colours of :func:`plot_points`, so a cluster has one colour in both plots.
    """
    ax = _axes(ax)
    xx, yy = np.meshgrid(np.arange(low, high, step), np.arange(low, high, step))
    regions = predict(np.c_[xx.ravel(), yy.ravel()].astype(np.float32)).reshape(xx.shape)
    n = n_clusters or int(max(regions.max(), -1 if labels is None else np.max(labels))) + 1
    colours = dict(cmap=cluster_colours(n), vmin=-0.5, vmax=n - 0.5)
    ax.pcolormesh(xx, yy, regions, alpha=0.35, shading="auto", **colours)
    ax.scatter(
        X[:, 0],
        X[:, 1],
        c="k" if labels is None else labels,
        s=4,
        edgecolors="k",
        linewidths=0.1,
        **({} if labels is None else colours),
    )
    ax.set(title=title, xlabel="$x_1$", ylabel="$x_2$")
    return ax


def plot_loss(losses, ax=None, title="training loss", per_restart=None):
    """Mean negative log-likelihood per epoch (of the kept restart, with the others faint when given)."""
    ax = _axes(ax)
    if per_restart is not None:
        ax.plot(np.asarray(per_restart, dtype=float), color="0.8", lw=0.6)
    ax.plot(losses, color="C0", lw=1.4, label="kept restart")
    finite = np.asarray(losses, dtype=float)
    finite = finite[np.isfinite(finite)]
    if finite.size > 10:  # the first epochs' spike would flatten the rest of the curve
        spread = np.quantile(finite, 0.98) - finite.min()
        ax.set_ylim(finite.min() - 0.05 * spread, np.quantile(finite, 0.98) + 0.05 * spread)
    ax.set(title=title, xlabel="epoch", ylabel="mean negative log-likelihood (nats)")
    ax.legend()
    return ax


def plot_contingency(table, ax=None, title="contingency matrix", normalize=True):
    """Row-normalised (or count) contingency matrix as a seaborn heatmap: rows are true labels, columns clusters."""
    import seaborn as sns

    table = np.asarray(table, dtype=float)
    if normalize:
        table = table / table.sum(axis=1, keepdims=True)
    ax = _axes(ax, figsize=(5, 4))
    sns.heatmap(
        table,
        ax=ax,
        cmap="viridis",
        annot=table.shape[0] <= 10,
        fmt=".2f" if normalize else ".0f",
        cbar_kws={"label": "fraction of the label" if normalize else "count"},
        annot_kws={"size": 6},
    )
    ax.set(title=title, xlabel="cluster", ylabel="true label")
    return ax


def plot_image_grid(images, image_shape, ax=None, title="samples", n_cols=10, row_labels=None):
    """Images (one per row of ``images``) tiled into one picture."""
    ax = _axes(ax, figsize=(n_cols * 0.7, max(1, len(images) // n_cols) * 0.75))
    images = np.clip(np.asarray(images), 0, 1).reshape((-1,) + tuple(image_shape))
    n_rows = -(-len(images) // n_cols)
    h, w = image_shape[:2]
    canvas = np.ones((n_rows * h, n_cols * w) + tuple(image_shape[2:]))
    for i, image in enumerate(images):
        r, c = divmod(i, n_cols)
        canvas[r * h : (r + 1) * h, c * w : (c + 1) * w] = image
    ax.imshow(canvas, cmap="gray_r" if len(image_shape) == 2 else None)
    ax.set(title=title, xlabel="sample", ylabel="component")
    ax.set_xticks([])
    ax.set_yticks(np.arange(n_rows) * h + h / 2, row_labels if row_labels is not None else range(n_rows))
    return ax


class DensityRecorder:
    """A ``fit`` callback that draws the density every ``every`` epochs, for a GIF of training.

    >>> recorder = DensityRecorder(X, every=100)
    >>> model.fit(X, callback=recorder, callback_every=recorder.every)  # the loop returns to Python every 100 epochs
    >>> recorder.save_gif("d.gif")
    """

    def __init__(self, X, every: int = 100, resolution: int = 60):
        self.X, self.every, self.resolution = X, every, resolution
        self.frames: list[tuple[int, np.ndarray]] = []
        self.grid = None

    def __call__(self, model, epoch: int) -> None:
        if epoch % self.every == 0 or epoch == model.epochs:
            xs, ys, density = density_grid(model.score_samples, self.X, self.resolution)
            self.grid = (xs, ys)
            self.frames.append((epoch, density))

    def save_gif(self, path, duration_ms: int = 250, title: str = "density during training") -> Path:
        """Render every frame (each on its own log scale from its max, as :func:`plot_density`) into a GIF."""
        import matplotlib.pyplot as plt
        from PIL import Image

        if not self.frames:
            raise ValueError("no frames recorded: pass the recorder as fit(..., callback=recorder) first")
        images = []
        for epoch, density in self.frames:
            fig, ax = plt.subplots(figsize=(5, 4.3))  # 450 px wide at dpi 90
            draw_density(ax, *self.grid, density, title=f"{title}, epoch {epoch}")
            ax.title.set_fontsize(12)
            buffer = io.BytesIO()
            fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
            plt.close(fig)
            images.append(Image.open(buffer).convert("P", palette=Image.ADAPTIVE, colors=64))
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        images[0].save(path, save_all=True, append_images=images[1:], duration=duration_ms, loop=0, optimize=True)
        return path

    def plot_strip(self, n_frames: int = 6, title: str = "mixture density during training"):
        """``n_frames`` snapshots evenly spread over training, the first and the final one included."""
        import matplotlib.pyplot as plt

        if not self.frames:
            raise ValueError("no frames recorded: pass the recorder as fit(..., callback=recorder) first")
        picks = np.unique(np.linspace(0, len(self.frames) - 1, min(n_frames, len(self.frames))).round().astype(int))
        fig, axes = plt.subplots(1, len(picks), figsize=(3.1 * len(picks), 2.9), squeeze=False)
        for ax, index in zip(axes[0], picks):
            epoch, density = self.frames[index]
            draw_density(ax, *self.grid, density, title=f"epoch {epoch}")
        fig.suptitle(title)
        fig.tight_layout()
        return fig
