"""The contrastive auxiliary loss of section 4.2, after the generalised end-to-end (GE2E) loss of Wan et al. (2018).

For the emotions with more than five samples in the batch (N of them), every L2-normalised
representation x_ji (sample i of emotion j) is compared with every emotion centroid c_k:

    S_ji,k = w * cos(x_ji, c_k) + b          w, b learnable, initialised 10 and -5 as in GE2E; w kept > 0
    L(x_ji) = -log softmax_k(S_ji,.)[j]      cross-entropy towards the own emotion's centroid

Own-class centroid: the paper's eq. (4) averages all M samples of emotion k. GE2E (Wan et al., eq. 8)
computes the centroid of the sample's own class WITHOUT the sample itself, which "makes training
stable and helps avoid trivial solutions" (a sample always pulls its own centroid towards itself). We
follow GE2E: own class, leave-one-out centroid; other classes, the full centroid. Classes may have
different counts in a batch (M_j), so each centroid is the mean of that class's samples.

Reduction: the paper's eq. (6) sums L(x_ji) over all retained samples, L_tot = L_CE + alpha * sum;
that is the default (``reduction="sum"``), with the paper's alpha values tuned for it. ``"mean"`` is
available (it makes alpha independent of the batch size).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

#: Emotions need MORE than this many samples in a batch to take part in the loss (section 4.2).
MIN_SAMPLES_EXCLUSIVE = 5


class ContrastiveAuxLoss(nn.Module):
    """(batch, dim) representations + (batch,) labels -> scalar loss (0 when fewer than two emotions qualify)."""

    def __init__(self, init_w: float = 10.0, init_b: float = -5.0, reduction: Literal["sum", "mean"] = "sum",
                 min_samples_exclusive: int = MIN_SAMPLES_EXCLUSIVE):
        super().__init__()
        if reduction not in ("sum", "mean"):
            raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
        self.w = nn.Parameter(torch.tensor(float(init_w)))
        self.b = nn.Parameter(torch.tensor(float(init_b)))
        self.reduction = reduction
        self.min_samples_exclusive = min_samples_exclusive

    def similarity(self, representations: torch.Tensor, labels: torch.Tensor):
        """The similarity matrix S (n, N) of the retained samples, their class index in 0..N-1, and the kept labels."""
        classes, counts = labels.unique(return_counts=True)
        kept = classes[counts > self.min_samples_exclusive]
        selected = torch.isin(labels, kept)
        x = F.normalize(representations[selected], dim=-1)  # (n, dim)
        target = torch.searchsorted(kept, labels[selected])  # (n,) in 0..N-1
        one_hot = F.one_hot(target, len(kept)).to(x.dtype)  # (n, N)
        sums = one_hot.T @ x  # (N, dim)
        sizes = one_hot.sum(0)  # (N,)
        centroids = sums / sizes[:, None]
        cos = x @ F.normalize(centroids, dim=-1).T  # (n, N)
        own = (sums[target] - x) / (sizes[target] - 1)[:, None]  # leave-one-out centroid of the own class
        cos_own = (x * F.normalize(own, dim=-1)).sum(-1)
        cos = torch.where(one_hot.bool(), cos_own[:, None], cos)
        w = self.w.clamp(min=1e-6)  # GE2E constrains w > 0 so that similarity raises the score
        return w * cos + self.b, target, kept

    def forward(self, representations: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        _, counts = labels.unique(return_counts=True)
        if int((counts > self.min_samples_exclusive).sum()) < 2:
            # No pair of emotions to contrast: a zero that still belongs to the graph.
            return representations.sum() * 0.0 + (self.w + self.b) * 0.0
        scores, target, _ = self.similarity(representations, labels)
        losses = F.cross_entropy(scores, target, reduction="none")
        return losses.sum() if self.reduction == "sum" else losses.mean()


class _ReverseGradient(torch.autograd.Function):
    """Identity forward; the gradient multiplied by ``-scale`` backward (Ganin & Lempitsky, 2015)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return -ctx.scale * grad, None


def reverse_gradient(x: torch.Tensor, scale: float) -> torch.Tensor:
    """``x`` unchanged; what flows back through it is multiplied by ``-scale``."""
    return _ReverseGradient.apply(x, scale)


class SpeakerAdversary(nn.Module):
    """Speaker-adversarial training (not in the paper): a classifier of the training speakers on what the model
    classifies emotions from, behind a gradient reversal layer (domain-adversarial training, Ganin & Lempitsky 2015,
    with speakers as the domains).

    (batch, dim) features -> (batch, n_speakers) speaker logits. The classifier descends the speaker
    cross-entropy (:meth:`loss`); the representation receives that gradient reversed and scaled by ``weight``, i.e.
    the model is pushed to hide who speaks while the emotion loss keeps what the voice says about the emotion.
    ``dim`` and ``n_speakers`` are sizes; ``hidden`` is the width of the classifier's one hidden layer.
    """

    def __init__(self, dim: int, n_speakers: int, weight: float, hidden: int = 128):
        super().__init__()
        if n_speakers < 2:
            raise ValueError(f"a speaker adversary needs at least 2 training speakers, got {n_speakers}")
        self.weight = float(weight)
        self.classifier = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, n_speakers))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.classifier(reverse_gradient(features, self.weight))

    @staticmethod
    def loss(logits: torch.Tensor, speakers: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy over the rows with a speaker (``speakers`` >= 0); 0, in the graph, when none has one."""
        rows = speakers >= 0
        if not bool(rows.any()):
            return logits.sum() * 0.0
        return F.cross_entropy(logits[rows], speakers[rows])
