"""Fit one model for one seed (or fold): epochs, validation-only model selection, test evaluation.

The loss is L_CE + sum over domains of alpha_d * L_aux,d (eq. 6), plus the model's own ``penalty``.
Each domain has its own contrastive loss (own w, b) computed on its rows of the batch. With
``--speaker-adversarial`` (not in the paper) a speaker classifier on the tower's last hidden layer (multi-domain
models: on the representation) adds its cross-entropy behind a gradient reversal layer
(:class:`train.losses.SpeakerAdversary`).
"""

from __future__ import annotations

import copy
import math
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from sercore.errors import SerError

from .augment import Mixed, mixup
from .config import TrainConfig
from .model_io import collate
from .dataset import ClassBalancedBatchSampler
from .losses import ContrastiveAuxLoss, SpeakerAdversary
from .metrics import Scores, score
from .models.ge2e import Ge2eEncoder


@dataclass
class Evaluation:
    """Predictions on one split: per-domain scores, plus the raw arrays (in dataset order)."""

    scores: dict[int, Scores]
    loss: float
    labels: np.ndarray
    predictions: np.ndarray
    domains: np.ndarray
    representations: np.ndarray
    utt_ids: list[str]
    #: Per-row tensors a model reports in ``ModelOutput.extras`` (e.g. gate weights), (n, ...) each.
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    #: (n, n_classes) softmax of the logits, columns the row's domain's classes (0 in a narrower domain's padding);
    #: None in records written before they were kept.
    probabilities: np.ndarray | None = None

    @property
    def ua(self) -> float:
        return float(np.mean([s.ua for s in self.scores.values()])) if self.scores else float("nan")

    @property
    def wa(self) -> float:
        return float(np.mean([s.wa for s in self.scores.values()])) if self.scores else float("nan")


def empty_evaluation() -> Evaluation:
    """The evaluation of no utterance (a run without validation utterances): no scores, nan loss and UA."""
    none = np.zeros(0, dtype=np.int64)
    return Evaluation({}, float("nan"), none, none, none, np.zeros((0, 0), dtype=np.float32), [])


@dataclass
class FitResult:
    best_epoch: int
    valid: Evaluation
    test: Evaluation
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    state: dict = field(default_factory=dict)  # best weights: {"model": ..., "aux": ...}


class NonFiniteLoss(SerError):
    """The training loss became nan or inf: the run is stopped rather than trained on (and selected) as garbage."""


#: cuBLAS workspace that makes its kernels (and the cuDNN LSTM's) repeat their results (PyTorch's reproducibility notes).
CUBLAS_WORKSPACE = ":4096:8"


def cuda_determinism(device: str | torch.device) -> None:
    """On CUDA, give cuBLAS a fixed workspace (``CUBLAS_WORKSPACE_CONFIG``, unless set already) so that the
    deterministic kernels :func:`deterministic` asks for exist and a run repeats its results for a seed on one GPU.
    It must happen before the process's first cuBLAS call (the trainer does it before moving its model)."""
    if torch.device(device).type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)


@contextmanager
def deterministic():
    """Deterministic kernels while fitting (CPU results then repeat exactly for a seed; on CUDA with
    :func:`cuda_determinism`); restored afterwards."""
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)


def _lengths_of(dataset: Dataset) -> list[int]:
    """Per item, the frames it pads a batch to (``FeatureDataset.lengths``; 0 for datasets without it)."""
    parts = getattr(dataset, "datasets", [dataset])
    return [n for p in parts for n in (p.lengths() if hasattr(p, "lengths") else [0] * len(p))]


def length_buckets(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Evaluation batches of items of similar length (sorted by length, stable), so that one long utterance is
    padded with other long ones rather than making a whole batch as long as itself."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def _labels_of(dataset: Dataset) -> list[tuple[int, int]]:
    """(domain, label) of every item, without building examples (ConcatDataset of FeatureDatasets)."""
    parts = getattr(dataset, "datasets", [dataset])
    return [(p.domain, y) for p in parts for y in p.labels]


class Trainer:
    """Trains ``model`` with the paper's optimiser and loss; ``classes[d]`` / ``alphas[d]`` per domain index d.

    ``n_speakers``: how many training speakers the training examples' ``speaker`` indices number; with
    ``config.speaker_adversarial`` > 0 and at least two of them, a :class:`SpeakerAdversary` is trained beside the
    model (built on the first batch, when the representation's width is known; it is not part of the model)."""

    def __init__(self, model: nn.Module, config: TrainConfig, classes: Sequence[Sequence[str]], alphas: Sequence[float],
                 seed: int = 0, description: str = "", n_speakers: int = 0):
        cuda_determinism(config.device)
        self.model = model.to(config.device)
        self.config = config
        self.classes = [list(c) for c in classes]
        self.alphas = [float(a) if config.aux else 0.0 for a in alphas]
        self.aux = nn.ModuleList(ContrastiveAuxLoss(reduction=config.aux_reduction) for _ in classes).to(config.device)
        self.seed = seed
        self.description = description
        self.n_speakers = n_speakers if config.speaker_adversarial > 0 else 0
        if self.n_speakers == 1:
            raise ValueError("--speaker-adversarial needs at least 2 training speakers; the training split has 1")
        self.adversary: SpeakerAdversary | None = None
        self.adversary_optimizer: torch.optim.Optimizer | None = None
        self.optimizer = self._optimizer()
        # EMA of the weights (optional): evaluated, selected and saved instead of the raw weights
        self.ema_model = copy.deepcopy(self.model) if config.ema else None

    def _optimizer(self) -> torch.optim.Optimizer:
        opt = self.config.optimizer
        # Learning rate per parameter: the fine-tuned GE2E encoder at lr * ge2e_lr_scale; a module with an
        # ``lr_scale`` attribute (the NAS module's hard-concrete gates, --nas-lr-scale) at lr * lr_scale; others at lr.
        rates = {}
        for m in self.model.modules():
            scale = opt.ge2e_lr_scale if isinstance(m, Ge2eEncoder) else getattr(m, "lr_scale", None)
            if scale is not None:
                rates.update({id(p): opt.lr * scale for p in m.parameters()})
        by_rate: dict[float, list] = {}
        for p in list(self.model.parameters()) + list(self.aux.parameters()):
            by_rate.setdefault(rates.get(id(p), opt.lr), []).append(p)
        groups = [{"params": params, "lr": lr} for lr, params in by_rate.items()]
        return torch.optim.AdamW(groups, lr=opt.lr, betas=tuple(opt.betas), eps=opt.eps, weight_decay=opt.weight_decay)

    def loss(self, output, batch, mixed: Mixed | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Total, cross-entropy and auxiliary loss; of a mixup batch, lam * those of its labels + (1 - lam) * those of
        its partners' labels."""
        label_sets = [(batch.labels, 1.0)] if mixed is None else [(batch.labels, mixed.lam), (mixed.labels, 1.0 - mixed.lam)]
        ce = aux = output.logits.new_zeros(())
        for labels, weight in label_sets:
            ce = ce + weight * F.cross_entropy(output.logits, labels, label_smoothing=self.config.label_smoothing)
            for d, alpha in enumerate(self.alphas):
                if alpha == 0.0:
                    continue
                rows = batch.domains == d
                if rows.any():
                    aux = aux + weight * alpha * self.aux[d](output.representation[rows], labels[rows])
        return ce + aux + output.penalty, ce, aux

    def speaker_loss(self, output, batch, mixed: Mixed | None = None) -> torch.Tensor:
        """The adversary's speaker cross-entropy on ``output.hidden`` (the tower's last hidden layer: every
        feature, fixed embeddings included, has passed a trained layer there), or on ``output.representation`` for
        a model without it (a multi-domain model, one tower per language); 0 without an adversary. Of a mixup
        batch, lam * that of its speakers + (1 - lam) * that of its partners' speakers. Builds the adversary on the
        first call (from a generator of its own: the model's random stream is the same with or without it)."""
        if not self.n_speakers:
            return output.logits.new_zeros(())
        if batch.speakers is None:
            raise ValueError("--speaker-adversarial: the training batches carry no speaker indices")
        features = output.hidden if output.hidden is not None else output.representation
        if self.adversary is None:
            opt = self.config.optimizer
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)
                self.adversary = SpeakerAdversary(features.shape[1], self.n_speakers,
                                                  self.config.speaker_adversarial).to(self.config.device)
            self.adversary_optimizer = torch.optim.AdamW(self.adversary.parameters(), lr=opt.lr, betas=tuple(opt.betas),
                                                         eps=opt.eps, weight_decay=opt.weight_decay)
        logits = self.adversary(features)
        if mixed is None:
            return SpeakerAdversary.loss(logits, batch.speakers)
        partners = batch.speakers[mixed.partner.to(batch.speakers.device)]
        return mixed.lam * SpeakerAdversary.loss(logits, batch.speakers) + (1.0 - mixed.lam) * SpeakerAdversary.loss(logits, partners)

    def loader(self, dataset: Dataset, train: bool) -> DataLoader:
        """The batches :meth:`fit` trains on (``train``: its sampler, e.g. class-balanced) or :meth:`evaluate` scores
        (by length)."""
        if not train:  # by length; evaluate() puts the results back in dataset order
            buckets = length_buckets(_lengths_of(dataset), max(self.config.batch_size, 64))
            return DataLoader(dataset, batch_sampler=buckets, collate_fn=collate)
        if self.config.sampler == "balanced":
            lengths = _lengths_of(dataset) if self.config.length_batches else None
            groups = _labels_of(dataset)
            n_batches = None
            if self.config.epoch_size is not None:
                n_batches = max(1, math.ceil(self.config.epoch_size / (self.config.per_class * len(set(groups)))))
            sampler = ClassBalancedBatchSampler(groups, self.config.per_class, seed=self.seed, lengths=lengths, n_batches=n_batches)
            return DataLoader(dataset, batch_sampler=sampler, collate_fn=collate)
        generator = torch.Generator().manual_seed(self.seed)
        return DataLoader(dataset, batch_size=self.config.batch_size, shuffle=True, generator=generator, collate_fn=collate)

    @torch.no_grad()
    def _update_ema(self) -> None:
        decay = float(self.config.ema)
        for e, p in zip(self.ema_model.parameters(), self.model.parameters()):
            e.mul_(decay).add_(p.detach(), alpha=1.0 - decay)
        for e, b in zip(self.ema_model.buffers(), self.model.buffers()):
            e.copy_(b)

    @property
    def eval_model(self) -> nn.Module:
        return self.ema_model if self.ema_model is not None else self.model

    @torch.no_grad()
    def evaluate(self, dataset: Dataset, what: str = "the evaluated utterances") -> Evaluation:
        """Predictions on ``dataset``; :class:`NonFiniteLoss` (naming ``what``) if the model's loss or
        representation of an utterance is nan or infinite (diverged weights that training did not see yet)."""
        model = self.eval_model
        model.eval()
        labels, preds, domains, reps, probs, ids, loss_sum = [], [], [], [], [], [], 0.0
        extras: dict[str, list[torch.Tensor]] = {}
        loader = self.loader(dataset, train=False)
        for batch in loader:
            batch = batch.to(self.config.device)
            out = model(batch)
            for key, value in out.extras.items():
                if torch.is_tensor(value) and value.ndim >= 1 and value.shape[0] == len(batch):
                    extras.setdefault(key, []).append(value.float().cpu())
            batch_loss = float(F.cross_entropy(out.logits, batch.labels, reduction="sum"))
            if not (math.isfinite(batch_loss) and torch.isfinite(out.representation).all()):
                rep = out.representation
                value = batch_loss if not math.isfinite(batch_loss) else float(rep[~torch.isfinite(rep)][0])
                raise NonFiniteLoss(
                    f"{self.description or 'training'}: the model's output became {value} on {what}; the run is "
                    "stopped. Lower --lr or --alpha, or check the features for extreme values.")
            loss_sum += batch_loss
            labels.append(batch.labels.cpu())
            preds.append(out.logits.argmax(-1).cpu())
            probs.append(torch.softmax(out.logits.float(), dim=-1).cpu())
            domains.append(batch.domains.cpu())
            reps.append(out.representation.float().cpu())
            ids += batch.utt_ids
        # back to dataset order (the loader batches by length)
        order = [i for bucket in loader.batch_sampler for i in bucket]
        inverse = np.argsort(np.asarray(order), kind="stable")
        labels_a, preds_a, domains_a = (torch.cat(x).numpy()[inverse] for x in (labels, preds, domains))
        ids = [ids[i] for i in inverse]
        scores = {d: score(labels_a[domains_a == d], preds_a[domains_a == d], self.classes[d])
                  for d in sorted(set(domains_a.tolist()))}
        return Evaluation(scores, loss_sum / len(labels_a), labels_a, preds_a, domains_a, torch.cat(reps).numpy()[inverse],
                          ids, {k: torch.cat(v).numpy()[inverse] for k, v in extras.items()}, torch.cat(probs).numpy()[inverse])

    def mixing(self, evaluation: Evaluation) -> dict:
        """What the evaluated model reports about its mixing on ``evaluation``'s rows, as one epoch's history keeps
        it: ``{"gates": {language: {expert: mean weight}}, "nas": {language: {"p_open" | "gate": (M, M) lists}}}``
        (``MultiDomainModel.describe`` without the expert names); {} for a model without gates or NAS."""
        describe = getattr(self.eval_model, "describe", None)
        details = describe(evaluation.extras, evaluation.domains) if describe else {}
        return {k: details[k] for k in ("gates", "nas") if k in details}

    def _better(self, valid: Evaluation, best: Evaluation | None) -> bool:
        if best is None or self.config.selection == "last":
            return True
        if self.config.selection == "loss":
            return valid.loss < best.loss
        key = "ua" if self.config.selection == "ua" else "wa"
        new, old = getattr(valid, key), getattr(best, key)
        return new > old or (new == old and valid.loss < best.loss)

    def fit(self, train: Dataset, valid: Dataset, test: Dataset) -> FitResult:
        """Train for the configured epochs and test the epoch chosen on ``valid``; an empty ``valid`` needs
        ``selection="last"`` (nothing to choose on: the last epoch is tested)."""
        if not len(valid) and self.config.selection != "last":
            raise ValueError(f"no validation utterance to choose the epoch by {self.config.selection!r}; use selection 'last'")
        start = time.perf_counter()
        loader = self.loader(train, train=True)
        history: list[dict] = []
        best: Evaluation | None = None
        best_epoch, best_state, stale = 0, None, 0
        epochs = tqdm(range(1, self.config.epochs + 1), desc=self.description or "training", unit="epoch",
                      disable=not self.config.progress, leave=False)
        mixing_rng = np.random.default_rng([self.seed, 1]) if self.config.mixup > 0 else None
        with deterministic():
            for epoch in epochs:
                if isinstance(loader.batch_sampler, ClassBalancedBatchSampler):
                    loader.batch_sampler.set_epoch(epoch)
                self.model.train()
                totals = np.zeros(4)
                n = 0
                for batch in tqdm(loader, desc=f"epoch {epoch}/{self.config.epochs}", unit="batch", leave=False,
                                  disable=not self.config.progress):
                    batch = batch.to(self.config.device)
                    mixed = mixup(batch, self.config.mixup, mixing_rng) if mixing_rng is not None else None
                    output = self.model(batch if mixed is None else mixed.batch)
                    loss, ce, aux = self.loss(output, batch, mixed)
                    speaker = self.speaker_loss(output, batch, mixed)
                    loss = loss + speaker
                    if not torch.isfinite(loss.detach()).all():
                        raise NonFiniteLoss(
                            f"{self.description or 'training'}: the training loss became {float(loss.detach())} at epoch "
                            f"{epoch}, batch {n + 1} (cross-entropy {float(ce.detach())}, auxiliary {float(aux.detach())}); "
                            "the run is stopped. Lower --lr or --alpha, or check the features for extreme values.")
                    self.optimizer.zero_grad(set_to_none=True)
                    if self.adversary_optimizer is not None:
                        self.adversary_optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    self.optimizer.step()
                    if self.adversary_optimizer is not None:
                        self.adversary_optimizer.step()
                    if self.ema_model is not None:
                        self._update_ema()
                    totals += [float(loss.detach()), float(ce.detach()), float(aux.detach()), float(speaker.detach())]
                    n += 1
                record = {"epoch": epoch, "train_loss": totals[0] / n, "train_ce": totals[1] / n, "train_aux": totals[2] / n}
                if self.n_speakers:  # the adversary's cross-entropy (ln n_speakers: it cannot tell the speakers apart)
                    record["train_speaker"] = totals[3] / n
                if len(valid):
                    result = self.evaluate(valid, f"the validation utterances after epoch {epoch}")
                    record.update(valid_loss=result.loss, valid_wa=result.wa, valid_ua=result.ua)
                    mixing = self.mixing(result)
                    if mixing:
                        record["mixing"] = mixing
                else:  # nothing to validate on (a few-shot language alone): the fixed recipe, the last epoch
                    result = empty_evaluation()
                history.append(record)
                epochs.set_postfix(loss=f"{record['train_loss']:.3f}", valid_ua=f"{result.ua:.3f}" if len(valid) else "-")
                if self._better(result, best):
                    best, best_epoch, stale = result, epoch, 0
                    best_state = {"model": copy.deepcopy(self.eval_model.state_dict()), "aux": copy.deepcopy(self.aux.state_dict())}
                else:
                    stale += 1
                    if self.config.patience is not None and stale >= self.config.patience:
                        break
            self.eval_model.load_state_dict(best_state["model"])
            self.aux.load_state_dict(best_state["aux"])
            test_result = self.evaluate(test, f"the test utterances (epoch {best_epoch})")
        return FitResult(best_epoch, best, test_result, history, time.perf_counter() - start, best_state)
