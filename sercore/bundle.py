"""The model bundle format: one file holding everything ``predict`` needs to use a trained model on new audio.

Written by ``train`` (:mod:`train.bundle_export`, ``<run>/model.bundle``), read by ``predict``
(:mod:`predict.bundle` rebuilds the model). It is a ``torch.save`` file of plain containers, strings,
numbers and tensors only, so ``torch.load(path, weights_only=True)`` reads it without unpickling any
Python object::

    format          "mgser-bundle"
    format_version  2
    sha256          SHA-256 of everything below (:func:`payload_digest`), verified by every read: a bundle
                    damaged on disk or in transfer is refused instead of predicting other classes
                    (version 1 bundles, written before the checksum, are still read, without it)
    meta            JSON text (below)
    model           the model's state dict (best run: highest validation UA, mean over languages)
    scalers         one entry per language (in ``meta["domains"]`` order): {"mean": {feature: tensor},
                    "std": {feature: tensor}}, or None when the run did not standardise

``meta`` holds: ``model`` (the ``--model`` name) and ``config`` (the ExperimentConfig as a dict), which
rebuild the network through :func:`train.models.build_model`; ``domains``, one entry per language with its
``classes`` (label vocabulary, logit column i is ``classes[i]``), ``kinds``, ``dims`` and ``inputs`` (the
:class:`~train.model_io.DomainInfo`; ``inputs`` absent in bundles written before it existed), ``dataset`` and ``provenance`` (per input feature, the store attributes
its extractor wrote: extractor, version, sample rate, hop, checkpoint SHA-256 and its settings);
``features`` (the model's features) and ``inputs`` (what must be extracted: the features plus ``ge2e_mel``
when GE2E was fine-tuned); ``selected_run`` (which run, its seed/fold and scores, and the rule); ``metrics``
(the run folder's summary and per-run scores, without per-epoch histories); ``calibration`` (absent in
bundles written before it), one entry per language or None: ``{"method": "temperature", "temperature": T,
"valid_ece_before", "valid_ece_after", ...}``, fitted on the selected run's validation split: ``predict``'s
probabilities are ``softmax(logits / T)``; library versions.

Nothing here reads the training stores: a bundle can be copied to another machine on its own.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .errors import SerError
from .fsio import write_atomic

FORMAT = "mgser-bundle"
FORMAT_VERSION = 2
#: Versions :func:`read_bundle` reads; version 1 has no checksum.
READABLE_VERSIONS = (1, 2)
BUNDLE_NAME = "model.bundle"


class BundleError(SerError):
    """A bundle that is missing, unreadable, of another format, or that does not fit the request."""

    def __init__(self, where: str | Path, problem: str):
        self.where, self.problem = str(where), problem
        super().__init__(f"{where}: {problem}")


def jsonable(value):
    """Provenance attributes as JSON values (numpy scalars and tuples from HDF5 / extractors)."""
    return json.loads(json.dumps(value, default=lambda o: o.item() if isinstance(o, np.generic) else str(o)))


def _tensors(arrays: dict) -> dict[str, torch.Tensor]:
    return {k: torch.as_tensor(np.asarray(v, dtype=np.float32)) for k, v in arrays.items()}


def payload_digest(payload: dict) -> str:
    """SHA-256 over a bundle's format entries, meta text, model tensors and scalers (names, dtypes, shapes and
    bytes, in sorted order): what the ``sha256`` entry holds."""
    h = hashlib.sha256()

    def add(name: str, value) -> None:
        h.update(name.encode() + b"\0")
        if isinstance(value, torch.Tensor):
            t = value.detach().cpu().contiguous()
            h.update(f"{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")  # 0-d tensors too
        elif isinstance(value, dict):
            for k in sorted(value, key=str):
                add(f"{name}/{k}", value[k])
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                add(f"{name}/{i}", v)
        else:
            h.update(repr(value).encode())

    for key in ("format", "format_version", "meta", "model", "scalers"):
        add(key, payload.get(key))
    return h.hexdigest()


def write_bundle(path: str | Path, meta: dict, state: dict, scalers: Sequence[dict | None]) -> Path:
    """Write a bundle atomically (:func:`sercore.fsio.write_atomic`). ``state`` is the model's state dict,
    ``scalers`` one ``{"mean": {feature: array}, "std": {...}}`` or None per domain."""
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        # key order matters: a model concatenates its features in the order of DomainInfo.kinds
        "meta": json.dumps(jsonable(meta)),
        "model": {k: v.detach().cpu() for k, v in state.items()},
        "scalers": [None if s is None else {"mean": _tensors(s["mean"]), "std": _tensors(s["std"])} for s in scalers],
    }
    payload["sha256"] = payload_digest(payload)
    buffer = io.BytesIO()
    torch.save(payload, buffer)  # in memory: a full disk is then an OSError naming the file, not a torch RuntimeError
    return write_atomic(Path(path), lambda tmp: tmp.write_bytes(buffer.getbuffer()))


def read_bundle(path: str | Path) -> dict:
    """The raw payload (meta parsed), read with ``weights_only=True``; :class:`BundleError` if it is not a bundle."""
    path = Path(path)
    if path.is_dir():  # a run folder: its bundle
        path = path / BUNDLE_NAME
    if not path.is_file():
        raise BundleError(path, "model bundle not found (every `train` run writes <out>/model.bundle)")
    if path.stat().st_size == 0:
        raise BundleError(path, "empty file, not a model bundle")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types on foreign or truncated bytes
        raise BundleError(path, f"not a readable model bundle ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise BundleError(path, f"not an {FORMAT} file")
    if payload.get("format_version") not in READABLE_VERSIONS:
        raise BundleError(path, f"bundle format version {payload.get('format_version')}, this toolkit reads versions "
                                f"{', '.join(map(str, READABLE_VERSIONS))}")
    missing = [k for k in ("meta", "model", "scalers") if k not in payload]
    if missing:
        raise BundleError(path, f"damaged model bundle: no {', '.join(missing)} entry")
    if payload["format_version"] >= 2:
        if not isinstance(payload.get("sha256"), str):
            raise BundleError(path, "damaged model bundle: no checksum entry")
        if payload_digest(payload) != payload["sha256"]:
            raise BundleError(path, "damaged model bundle: its contents do not match its SHA-256 checksum "
                                    "(corrupted on disk or in transfer); copy it again or re-export it from its run folder")
    payload = dict(payload)
    try:
        meta = json.loads(payload["meta"])
    except (TypeError, ValueError) as exc:
        raise BundleError(path, f"damaged model bundle: its meta entry is not valid JSON ({str(exc).splitlines()[0][:200]})") from None
    needed = ("model", "config", "domains", "features", "inputs")
    lacking = [k for k in needed if not isinstance(meta, dict) or k not in meta]
    if lacking:
        raise BundleError(path, f"damaged model bundle: its meta entry lacks {', '.join(lacking)}")
    scalers = payload["scalers"]
    if not isinstance(scalers, list) or len(scalers) != len(meta["domains"]) or any(
            s is not None and not (isinstance(s, dict) and {"mean", "std"} <= set(s)) for s in scalers):
        raise BundleError(path, f"damaged model bundle: expected one scaler entry (or None) per language "
                                f"({len(meta['domains'])}), each with mean and std")
    payload["meta"] = meta
    payload["path"] = path
    return payload
