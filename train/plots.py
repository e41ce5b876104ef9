"""Figures: the confusion matrix of a run folder, the t-SNE of representations (paper figure 3), the gate
weights and NAS connections at the end (figure 4b) and over training, learning curves."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402


def save_figure(fig, path: str | Path) -> Path:
    """Lay ``fig`` out, write it to ``path`` (PNG at 120 dpi) and close it; returns the path."""
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_confusion(confusion: np.ndarray, classes: Sequence[str], path: str | Path, title: str = "") -> Path:
    """Row-normalised confusion matrix (rows: reference, columns: predicted), counts in the cells."""
    from sklearn.metrics import ConfusionMatrixDisplay

    confusion = np.asarray(confusion, dtype=float)
    rates = confusion / np.maximum(confusion.sum(1, keepdims=True), 1)
    n = len(classes)
    fig, ax = plt.subplots(figsize=(1.0 + 0.9 * n, 0.8 + 0.8 * n))
    shown = ConfusionMatrixDisplay(rates, display_labels=list(classes))
    shown.plot(ax=ax, cmap="Blues", colorbar=False, xticks_rotation=45, values_format=".2f", text_kw={"fontsize": 7})
    shown.im_.set_clim(0, 1)
    for i in range(n):
        for j in range(n):
            shown.text_[i, j].set_text(f"{rates[i, j]:.2f}\n({int(confusion[i, j])})")
    ax.set_xlabel("predicted")
    ax.set_ylabel("reference")
    if title:
        ax.set_title(title, fontsize=8)
    return save_figure(fig, path)


def plot_tsne(panels: Sequence[tuple[str, np.ndarray, np.ndarray]], path: str | Path, seed: int = 0, title: str = "") -> Path:
    """One t-SNE panel per (title, representations (n, dim), emotion names (n,)); points coloured by emotion.

    Representations are L2-normalised first, as the contrastive loss sees them.
    """
    from sklearn.manifold import TSNE

    classes = sorted({c for _, _, names in panels for c in names})
    colours = {c: plt.cm.tab10(i % 10) for i, c in enumerate(classes)}
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.6), squeeze=False)
    for ax, (name, reps, labels) in zip(axes[0], panels):
        x = reps / np.maximum(np.linalg.norm(reps, axis=1, keepdims=True), 1e-12)
        perplexity = float(min(30, max(2, len(x) - 1) / 3))
        xy = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)
        for c in classes:
            sel = np.asarray(labels) == c
            ax.scatter(xy[sel, 0], xy[sel, 1], s=10, color=colours[c], label=c)
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0][-1].legend(fontsize=7, loc="best", markerscale=1.5)
    if title:
        fig.suptitle(title, fontsize=9)
    return save_figure(fig, path)


def plot_gates(panels: Sequence[tuple[str, Sequence[str], dict]], path: str | Path) -> Path:
    """Paper figure 4b: per feature, one bar per language (mean gate weight, error bar = std over runs).

    ``panels``: (title, features, gates) with ``gates[language][feature] = {"mean": ..., "std": ...}``; one
    panel per model.
    """
    fig, axes = plt.subplots(1, len(panels), figsize=(0.6 + 3.6 * len(panels), 3.4), squeeze=False)
    for ax, (title, features, gates) in zip(axes[0], panels):
        languages = list(gates)
        width = 0.8 / max(1, len(languages))
        x = np.arange(len(features))
        for k, lang in enumerate(languages):
            means = [gates[lang][f]["mean"] for f in features]
            stds = [gates[lang][f]["std"] for f in features]
            ax.bar(x + (k - (len(languages) - 1) / 2) * width, means, width, yerr=stds, capsize=2,
                   color=plt.cm.tab10(k % 10), label=lang)
        ax.set_xticks(x, features)
        ax.set_ylim(0, 1)
        ax.set_ylabel("mean gate weight")
        ax.set_title(title, fontsize=8)
        ax.legend(fontsize=7)
    return save_figure(fig, path)


def plot_nas(features: Sequence[str], nas: dict, path: str | Path, title: str = "") -> Path:
    """Heatmaps of the NAS connections v_j -> u_i per language: P(xi_ij > 0) and the deterministic gate."""
    languages = list(nas)
    names = {"p_open": "P(xi > 0)", "gate": "deterministic xi"}
    n = len(features)
    fig, axes = plt.subplots(len(languages), 2, figsize=(2.2 + 2.2 * n, 0.6 + (1.0 + 0.7 * n) * len(languages)), squeeze=False)
    for row, lang in enumerate(languages):
        for col, key in enumerate(("p_open", "gate")):
            ax = axes[row][col]
            values = np.asarray(nas[lang][key]["mean"])
            ax.imshow(values, cmap="viridis", vmin=0, vmax=1)
            ax.set_xticks(range(n), [f"v:{f}" for f in features], fontsize=7)
            ax.set_yticks(range(n), [f"u:{f}" for f in features], fontsize=7)
            for i in range(n):
                for j in range(n):
                    ax.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", fontsize=7,
                            color="black" if values[i, j] > 0.5 else "white")
            ax.set_title(f"{lang}: {names[key]}", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=8)
    return save_figure(fig, path)


def plot_traces(panels: dict[str, dict[str, tuple]], path: str | Path, ylabel: str, title: str = "") -> Path:
    """Values over epochs, one panel per key of ``panels`` (a language), one line per series (an expert, a NAS
    connection): ``panels[panel][name] = (epochs (E,), mean (E,), low (E,), high (E,))``, the band from low to high."""
    fig, axes = plt.subplots(1, len(panels), figsize=(0.6 + 3.8 * len(panels), 3.2), squeeze=False, sharey=True)
    for ax, (panel, lines) in zip(axes[0], panels.items()):
        for k, (name, (epochs, mean, low, high)) in enumerate(lines.items()):
            colour = plt.cm.tab10(k % 10)
            ax.plot(epochs, mean, marker="o", markersize=3, color=colour, label=name)
            ax.fill_between(epochs, low, high, color=colour, alpha=0.2, linewidth=0)
        ax.set_ylim(0, 1)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(panel, fontsize=9)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel(ylabel)
    if title:
        fig.suptitle(title, fontsize=8)
    return save_figure(fig, path)


Point = tuple[float, float, float]  # (mean, low, high) of a figure with its 95% interval


def plot_curve(shots: Sequence[str], lines: dict[str, list[Point | None]], path: str | Path, xlabel: str, ylabel: str,
               title: str = "", differences: dict[str, list[Point | None]] | None = None,
               difference_label: str = "") -> Path:
    """A learning curve: ``lines[name][i]`` = (mean, low, high) at ``shots[i]`` (None: not run), equally spaced, the
    lines side by side at each shot so that their intervals stay apart. With ``differences`` (same shape, e.g. each
    model minus single), a second panel draws them around a dashed 0 in the same colours."""
    differences = {name: points for name, points in (differences or {}).items() if any(p is not None for p in points)}
    panels = [(lines, ylabel)] + ([(differences, difference_label)] if differences else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.6), squeeze=False)
    x = np.arange(len(shots))
    names = list(lines) + [name for name in differences if name not in lines]  # one colour and place per name
    width = 0.3 / len(names)
    for ax, (series, label) in zip(axes[0], panels):
        for name, points in series.items():
            k = names.index(name)
            at = [i for i, p in enumerate(points) if p is not None]
            if not at:
                continue
            mean, low, high = (np.array([points[i][j] for i in at], dtype=float) for j in range(3))
            low, high = np.where(np.isnan(low), mean, low), np.where(np.isnan(high), mean, high)
            ax.errorbar(x[at] + (k - (len(names) - 1) / 2) * width, mean, yerr=[mean - low, high - mean], marker="o",
                        markersize=4, capsize=2, color=plt.cm.tab10(k % 10), label=name)
        ax.set_xticks(x, list(shots))
        ax.set_xlabel(xlabel)
        ax.set_ylabel(label)
        ax.legend(fontsize=7)
    axes[0][0].set_ylim(0, 1)
    if differences:
        axes[0][1].axhline(0, color="grey", linestyle="--", linewidth=0.8)
    if title:
        fig.suptitle(title, fontsize=8)
    return save_figure(fig, path)


def plot_differences(panels: dict[str, dict[str, dict[str, tuple[float, float, float]]]], path: str | Path,
                     ylabel: str, title: str = "") -> Path:
    """Paired differences with their intervals, one panel per ``panels`` key (e.g. a protocol):
    ``panels[panel][group][series]`` = (mean, low, high); groups along x (e.g. models), one marker per series
    (e.g. language) side by side, a line at 0. nan bounds: the mean alone. One legend of every series, right of the
    last panel, where it hides no interval."""
    width = 2.4 + sum(max(3.4, 0.9 * len(groups)) for groups in panels.values())
    fig, axes = plt.subplots(1, len(panels), figsize=(width, 3.6), squeeze=False, sharey=True)
    colours = {s: plt.cm.tab10(k % 10) for k, s in enumerate(dict.fromkeys(s for gs in panels.values() for g in gs.values() for s in g))}
    handles = {}
    for ax, (name, groups) in zip(axes[0], panels.items()):
        series = list(dict.fromkeys(s for g in groups.values() for s in g))
        width = 0.7 / max(len(series), 1)
        for k, s in enumerate(series):
            xs = [i + (k - (len(series) - 1) / 2) * width for i, g in enumerate(groups) if s in groups[g]]
            mean, low, high = (np.array([groups[g][s][j] for g in groups if s in groups[g]], dtype=float) for j in range(3))
            err = np.vstack([np.where(np.isnan(low), 0, mean - low), np.where(np.isnan(high), 0, high - mean)])
            drawn = ax.errorbar(xs, mean, yerr=err, fmt="o", markersize=4, capsize=3, color=colours[s], label=s)
            handles.setdefault(s, drawn)  # every panel draws its series; the legend keeps the first handle
        ax.axhline(0, color="grey", linewidth=0.8)
        ax.set_xticks(range(len(groups)), list(groups), fontsize=8)
        ax.set_title(name, fontsize=9)
    axes[0][-1].legend(list(handles.values()), list(handles), fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axes[0][0].set_ylabel(ylabel)
    if title:
        fig.suptitle(title, fontsize=9)
    return save_figure(fig, path)
