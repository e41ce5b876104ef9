"""What one batch may cost: a maximum length for sequence features and a memory estimate checked before training.

One very long recording (a 10-minute WAV in a corpus of 3-second clips) would otherwise make every padded batch
it lands in as long as itself; a large ``--per-class`` multiplies the rows. Two bounds, both in
:class:`train.config.TrainConfig`:

* ``max_seconds`` (``train --max-seconds``, default 60): each sequence feature longer than this is cropped to its
  central ``max_seconds`` (:func:`crop_center`), in training and evaluation alike (``predict`` does the same
  with the bundle's value). The frame count comes from the feature's ``hop_seconds`` in the store (10 ms when a
  store does not record it). None: no limit.
* ``max_batch_gb`` (``train --max-batch-gb``, default 8): before a run is fitted, :func:`check_batch_memory`
  estimates the largest training batch (rows, at most the run's training utterances, x longest cropped sequence
  x per-frame activations of the sequence encoders, forward and backward: :func:`estimate_batch_bytes`) and
  refuses to start above it, naming the utterance and store that set the length and the options that lower it.
  The estimate is coarse (an upper bound within a small factor, not a measurement).

Evaluation batches are additionally built from utterances of similar length (``train.network_trainer``), so that a
long utterance is padded together with other long ones.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch

from sercore.errors import DataError
from sercore.store import store_path

#: Frame step assumed for a sequence feature whose store records no ``hop_seconds``.
DEFAULT_HOP_SECONDS = 0.01


class BatchTooLarge(DataError):
    """A training batch would need more memory than ``--max-batch-gb`` allows."""


def max_frames(provenance: Mapping[str, Mapping], kinds: Mapping[str, str], max_seconds: float | None) -> dict[str, int]:
    """Per sequence feature, the most frames kept under ``max_seconds`` (empty when there is no limit)."""
    if max_seconds is None:
        return {}
    out = {}
    for name, kind in kinds.items():
        if kind != "sequence":
            continue
        hop = provenance.get(name, {}).get("hop_seconds") or DEFAULT_HOP_SECONDS
        out[name] = max(1, int(round(float(max_seconds) / float(hop))))
    return out


def crop_center(array, frames: int | None):
    """The central ``frames`` rows of a (time, dim) array or tensor (itself when it is not longer)."""
    if frames is None or array.shape[0] <= frames:
        return array
    start = (array.shape[0] - frames) // 2
    return array[start:start + frames]


def frame_floats(dim: int, encoder) -> int:
    """Floats one frame of one sequence costs in a :class:`train.models.encoder.SequenceEncoder` (input, conv
    outputs, BiLSTM gates and outputs per layer, attention), forward plus gradients (x 2)."""
    conv = encoder.conv_channels * len(encoder.kernel_sizes) * 2
    lstm = encoder.lstm_layers * 2 * encoder.lstm_hidden * 6
    attention = encoder.attention_dim * 2
    return 2 * (dim + conv + lstm + attention)


def estimate_batch_bytes(rows: int, frames: Mapping[str, int], dims: Mapping[str, int], encoders: Mapping) -> int:
    """Bytes of a batch of ``rows`` utterances padded to ``frames[f]`` for each sequence feature f (float32)."""
    return 4 * rows * sum(frames[f] * frame_floats(dims[f], encoders[f]) for f in frames)


def check_batch_memory(config, domain_data: Sequence, features: Sequence[str], n_train: int | None = None) -> None:
    """Refuse (:class:`BatchTooLarge`) a configuration whose largest training batch is estimated above
    ``config.train.max_batch_gb``; see the module docstring. ``n_train``: the utterances a run trains on (a
    shuffled batch holds at most that many)."""
    train = config.train
    if train.sampler == "balanced":
        rows = train.per_class * sum(len(d.classes) for d in domain_data)
        rows_how = f"--per-class {train.per_class} x {sum(len(d.classes) for d in domain_data)} classes"
    elif n_train is not None and n_train < train.batch_size:
        rows = n_train
        rows_how = f"all {n_train} training utterances, fewer than --batch-size {train.batch_size}"
    else:
        rows = train.batch_size
        rows_how = f"--batch-size {train.batch_size}"
    frames: dict[str, int] = {}
    longest: dict[str, tuple[int, int, object]] = {}  # feature -> (frames, index, data)
    dims: dict[str, int] = {}
    for data in domain_data:
        limit = max_frames(data.provenance, data.kinds, train.max_seconds)
        for name, arrays in data.features.items():
            if data.kinds.get(name) != "sequence":
                continue
            dims[name] = int(arrays[0].shape[-1])
            i = max(range(len(arrays)), key=lambda k: arrays[k].shape[0])
            n = min(arrays[i].shape[0], limit.get(name, arrays[i].shape[0]))
            if n > frames.get(name, 0):
                frames[name], longest[name] = n, (arrays[i].shape[0], i, data)
    if not frames:
        return
    encoders = {name: config.encoder(name) for name in frames}
    need = estimate_batch_bytes(rows, frames, dims, encoders)
    budget = train.max_batch_gb * 1e9
    if need <= budget:
        return
    name = max(frames, key=lambda f: frames[f] * frame_floats(dims[f], encoders[f]))
    full, i, data = longest[name]
    hop = data.provenance.get(name, {}).get("hop_seconds") or DEFAULT_HOP_SECONDS
    where = store_path(config.features_dir, data.spec.dataset, data.store_splits[i])
    cropped = f", cropped to {train.max_seconds:g} s" if frames[name] < full else ""
    raise BatchTooLarge(where, f"a training batch would need about {need / 1e9:.1f} GB (over --max-batch-gb "
                               f"{train.max_batch_gb:g}): {rows} rows ({rows_how}) padded to utterance "
                               f"{data.utt_ids[i]!r} ({full * hop:.0f} s of {name}{cropped}). Lower --max-seconds or "
                               f"{'--per-class' if train.sampler == 'balanced' else '--batch-size'}, remove the long "
                               "recording from the manifest, or raise --max-batch-gb if the machine has the memory")


def padded_lengths(example_features: Mapping[str, torch.Tensor]) -> int:
    """The padding an example causes: its longest sequence (0 for embeddings only)."""
    return max((int(a.shape[0]) for a in example_features.values() if a.ndim == 2), default=0)
