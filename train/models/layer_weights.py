"""A learned softmax-weighted sum over the stored hidden layers of a self-supervised encoder (SUPERB's recipe).

Features from the Hugging Face encoders (``extract/extractors/ssl.py``) store several hidden layers per frame,
concatenated: (frames, n_layers * layer_dim), with the layer list in the feature's provenance (``layers``).
Following SUPERB (Yang et al. 2021), the trainer does not pick a layer: it learns one weight per layer,
normalised by a softmax, and feeds the weighted sum (frames, layer_dim) to the feature's sequence encoder.
The weights start equal (zero logits) and are trained with the rest of the model.

After training, :func:`write_layer_weights` reports them per run: ``layer_weights.csv`` and ``layer_weights.png``
in the run folder (which layers carry emotion for this corpus).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from sercore.tables import write_csv


class LayerWeightedSum(nn.Module):
    """(batch, frames, n_layers * layer_dim) -> (batch, frames, layer_dim): ``sum_l softmax(logits)_l * x_l``.

    ``x_l`` is the l-th block of ``layer_dim`` values of each frame (the layer order of the store).
    ``normalize=True`` first applies a parameter-free layer norm to each layer (SUPERB's ``layer_norm`` option),
    so layers of very different scales compete on their content; off by default, since the trainer already
    standardises every stored dimension.
    """

    def __init__(self, n_layers: int, layer_dim: int, normalize: bool = False):
        super().__init__()
        if n_layers < 1 or layer_dim < 1:
            raise ValueError(f"n_layers and layer_dim must be positive, got {n_layers} and {layer_dim}")
        self.n_layers = n_layers
        self.layer_dim = layer_dim
        self.normalize = normalize
        self.logits = nn.Parameter(torch.zeros(n_layers))

    def weights(self) -> torch.Tensor:
        """(n_layers,) the current softmax weights."""
        return torch.softmax(self.logits, dim=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.n_layers * self.layer_dim:
            raise ValueError(f"expected {self.n_layers} layers x {self.layer_dim} = {self.n_layers * self.layer_dim} "
                             f"values per frame, got {x.shape[-1]}")
        layers = x.reshape(*x.shape[:-1], self.n_layers, self.layer_dim)  # (batch, frames, n_layers, layer_dim)
        if self.normalize:
            layers = nn.functional.layer_norm(layers, (self.layer_dim,))
        return torch.einsum("...ld,l->...d", layers, self.weights())


#: State-dict keys of the layer weights inside a model: ``<prefix>layer_weighting.<feature>.logits``.
_KEY = re.compile(r"^(?P<prefix>.*?)layer_weighting\.(?P<feature>[^.]+)\.logits$")


def learned_layer_weights(state_dict: Mapping[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """``{feature: (n_layers,) softmax weights}`` from a trained model's state dict (a model holding several
    weightings of one feature, e.g. per language, gets ``"<module prefix><feature>"`` keys)."""
    found: dict[str, np.ndarray] = {}
    for key, value in state_dict.items():
        m = _KEY.match(key)
        if m:
            prefix = m["prefix"].rstrip(".")
            prefix = "" if prefix in ("", "encoders") else prefix + "."
            found[prefix + m["feature"]] = torch.softmax(value.detach().float().cpu(), dim=0).numpy()
    return found


def write_layer_weights(states: Sequence[Mapping[str, torch.Tensor]], layers: Mapping[str, Sequence[int] | None],
                        out: str | Path, title: str = "") -> Path | None:
    """``layer_weights.csv`` (run, feature, hidden state, weight; then mean and std over runs) and
    ``layer_weights.png`` (mean weight per stored layer, error bars = std over runs) for every feature with
    learned layer weights in the runs' model ``states``. ``layers[feature]``: the hidden-state indices the store
    holds (provenance ``layers``); None or missing: 0, 1, ... Returns the CSV path, or None if there is nothing."""
    per_run = [learned_layer_weights(s) for s in states]
    names = sorted({k for r in per_run for k in r})
    if not names:
        return None
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table: dict[str, np.ndarray] = {}
    labels: dict[str, list[int]] = {}
    csv_rows = []
    for name in names:
        rows = np.stack([r[name] for r in per_run if name in r])  # (runs, n_layers)
        feature = name.rsplit(".", 1)[-1]
        labels[name] = list(layers.get(feature) or range(rows.shape[1]))
        table[name] = rows
        by_row = [(f"run{k}", row) for k, row in enumerate(rows)]
        by_row += [("mean", rows.mean(0)), ("std", rows.std(0, ddof=1) if len(rows) > 1 else 0 * rows[0])]
        csv_rows += [(label, name, layer, f"{value:.4f}") for label, values in by_row for layer, value in zip(labels[name], values)]
    path = write_csv(out / "layer_weights.csv", csv_rows, ["row", "feature", "hidden_state", "weight"])
    _plot(table, labels, out / "layer_weights.png", title)
    return path


def _plot(table: Mapping[str, np.ndarray], labels: Mapping[str, list[int]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(table), 1, figsize=(max(4.0, 0.35 * max(len(v) for v in labels.values()) + 2), 2.4 * len(table)),
                             squeeze=False)
    for ax, (name, rows) in zip(axes[:, 0], table.items()):
        mean = rows.mean(0)
        err = rows.std(0, ddof=1) if len(rows) > 1 else None
        ax.bar(range(len(mean)), mean, yerr=err, color="tab:blue", capsize=2)
        ax.axhline(1.0 / len(mean), color="grey", lw=0.8, ls="--", label="uniform")
        ax.set_xticks(range(len(mean)), [str(x) for x in labels[name]], fontsize=7)
        ax.set_ylabel("weight")
        ax.set_title(f"{name}: learned layer weights ({len(rows)} run{'s' if len(rows) > 1 else ''})", fontsize=9)
        ax.legend(fontsize=7, loc="upper right")
    axes[-1, 0].set_xlabel("hidden state (0 = input of the first transformer layer)")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
