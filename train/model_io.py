"""The contract between data and models: what a model reads (:class:`Batch`), what it knows about a
language domain when it is built (:class:`DomainInfo`) and what it returns (:class:`ModelOutput`).

This module depends on torch only, so models never import the HDF5 loading.

Everything the models see goes through :class:`Batch`::

    Batch.sequences   {feature: (batch, frames, dim) float32}  2-D features, zero-padded after each utterance
    Batch.lengths     {feature: (batch,) int64}                real frames of each utterance (>= 1)
    Batch.embeddings  {feature: (batch, dim) float32}          1-D features (utterance embeddings)
    Batch.labels      (batch,) int64                           class index in the utterance's domain's class list
    Batch.domains     (batch,) int64                           index of the utterance's domain in the experiment
    Batch.utt_ids     list[str]
    Batch.speakers    (batch,) int64                           training speaker index (-1: none); only the trainer reads it

A feature is a sequence or an embedding according to its store ``kind``; both dicts are keyed by the
store's feature names. Models must use ``lengths`` (packed LSTMs, masked attention) so that padding
never changes an output; ``tests/train/models/test_encoder.py`` checks this.

A model returns :class:`ModelOutput`: ``logits`` (batch, n_classes) where the columns are the row's
domain's classes (a multi-domain model pads narrower domains with ``-inf``), ``representation``
(batch, dim) used by the contrastive auxiliary loss, ``penalty`` a scalar added to the loss as is (e.g. an
architecture-search regulariser; 0 for the single-domain model), ``extras`` (per-row tensors such as
gate weights, (batch, ...) each) and, where the model has one classification tower for all rows, ``hidden``
(batch, units): that tower's last hidden layer, which the speaker adversary reads (else it reads ``representation``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch


@dataclass
class DomainInfo:
    """What a model builder needs to know about one language domain."""

    language: str
    classes: list[str]
    kinds: dict[str, str]  # model input feature -> "sequence" | "embedding"
    dims: dict[str, int]  # feature -> last dimension (includes the inputs below)
    #: feature -> the stored feature its fine-tunable module consumes (``{"ge2e": "ge2e_mel"}``), read from the
    #: stores' provenance (``input_of``)
    inputs: dict[str, str] = field(default_factory=dict)
    #: feature -> number of stored hidden layers (dims[f] = layers[f] * layer width), for features that hold
    #: several (the Hugging Face encoders); the model learns a weighted sum over them (models/layer_weights.py)
    layers: dict[str, int] = field(default_factory=dict)


@dataclass
class ModelOutput:
    logits: torch.Tensor  # (batch, n_classes)
    representation: torch.Tensor  # (batch, dim)
    penalty: torch.Tensor | float = 0.0
    extras: dict = field(default_factory=dict)
    hidden: torch.Tensor | None = None  # (batch, units)


@dataclass
class Batch:
    """A padded mini-batch; see the module docstring for shapes."""

    sequences: dict[str, torch.Tensor]
    lengths: dict[str, torch.Tensor]
    embeddings: dict[str, torch.Tensor]
    labels: torch.Tensor
    domains: torch.Tensor
    utt_ids: list[str] = field(default_factory=list)
    #: Per row, the index of its speaker among the training speakers of the fit (-1: not a training speaker, or
    #: unknown); for ``--speaker-adversarial`` (``train.network_trainer``). None: no speaker known in the batch.
    speakers: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def to(self, device: str | torch.device) -> "Batch":
        return Batch(
            {k: v.to(device) for k, v in self.sequences.items()},
            dict(self.lengths),  # lengths stay on the CPU: pack_padded_sequence wants them there
            {k: v.to(device) for k, v in self.embeddings.items()},
            self.labels.to(device),
            self.domains.to(device),
            list(self.utt_ids),
            None if self.speakers is None else self.speakers.to(device),
        )

    def select(self, rows: torch.Tensor | Sequence[int]) -> "Batch":
        """The sub-batch of the given rows (e.g. one domain's rows); padding is trimmed to the longest kept."""
        rows = torch.as_tensor(rows, dtype=torch.long)
        sequences, lengths = {}, {}
        for k, v in self.sequences.items():
            kept = self.lengths[k][rows.cpu()]
            top = int(kept.max()) if len(kept) else 0
            sequences[k] = v[rows.to(v.device), :top]
            lengths[k] = kept
        return Batch(sequences, lengths, {k: v[rows.to(v.device)] for k, v in self.embeddings.items()},
                     self.labels[rows.to(self.labels.device)], self.domains[rows.to(self.domains.device)],
                     [self.utt_ids[i] for i in rows.tolist()],
                     None if self.speakers is None else self.speakers[rows.to(self.speakers.device)])


@dataclass
class Example:
    """One utterance as a dataset yields it: (frames, dim) or (dim,) tensors per feature."""

    utt_id: str
    features: dict[str, torch.Tensor]
    label: int
    domain: int = 0
    speaker: int = -1  # index among the fit's training speakers (-1: none)


def collate(examples: Sequence[Example]) -> Batch:
    """Stack examples into a :class:`Batch`: 2-D features are zero-padded to the longest in the batch."""
    if not examples:
        raise ValueError("cannot collate an empty batch")
    sequences, lengths, embeddings = {}, {}, {}
    for name, first in examples[0].features.items():
        arrays = [e.features[name] for e in examples]
        if first.ndim == 1:
            embeddings[name] = torch.stack(arrays)
            continue
        lens = torch.tensor([a.shape[0] for a in arrays], dtype=torch.long)
        padded = torch.zeros(len(arrays), int(lens.max()), first.shape[1], dtype=torch.float32)
        for i, a in enumerate(arrays):
            padded[i, : a.shape[0]] = a
        sequences[name], lengths[name] = padded, lens
    return Batch(
        sequences,
        lengths,
        embeddings,
        torch.tensor([e.label for e in examples], dtype=torch.long),
        torch.tensor([e.domain for e in examples], dtype=torch.long),
        [e.utt_id for e in examples],
        torch.tensor([e.speaker for e in examples], dtype=torch.long),
    )

