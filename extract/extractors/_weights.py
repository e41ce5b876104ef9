"""What the three downloaded-weights extractors (wav2vec, allosaurus, byol) share.

* :func:`require_weights` turns an unset or missing path into a :class:`MissingWeightsError` that says which
  option / environment variable to set (from the configuration field's :func:`.registry.setting`), which file is expected and where the published weights live.
* :class:`CheckpointError` is the one error for a file that exists but is not what the extractor expects
  (other architecture, missing keys, not a checkpoint at all); it names the file.
* :func:`load_torch_checkpoint` reads a ``torch.save`` file. Since torch 2.6, ``torch.load`` refuses any
  pickled Python object by default; published checkpoints carry a few (fairseq's ``argparse.Namespace``
  of training arguments), so those are allow-listed explicitly.
"""

from __future__ import annotations

import argparse
import logging
import pickle
from dataclasses import dataclass
from pathlib import Path

from sercore.errors import DataError

from .base import MissingWeightsError
from .registry import Setting

log = logging.getLogger(__name__)


class CheckpointError(DataError):
    """A weights file or model folder that exists but does not hold what the extractor expects."""


@dataclass(frozen=True)
class WeightsSpec:
    """Which configuration field holds an extractor's weights and where a user gets them (for error messages).

    The option and environment variable that set the field are declared with the field itself
    (:func:`.registry.setting`, in the extractor's configuration dataclass).
    """

    field: str  # the configuration field holding the path
    expected: str  # what the path must point to
    source: str  # where to download it (text only: nothing here downloads)


def require_weights(feature: str, path: Path | None, how: Setting, spec: WeightsSpec, *, directory: bool = False) -> Path:
    """The configured ``path`` of ``feature``'s weights, or :class:`MissingWeightsError` telling the user how to
    provide it (``how``: the setting of the field)."""
    hint = f"pass {how.option} or set {how.env}"
    if path is None:
        raise MissingWeightsError(
            f"{feature}: no weights configured; {hint} to {spec.expected} (get it from {spec.source})"
        )
    path = Path(path).expanduser()
    exists = path.is_dir() if directory else path.is_file()
    if not exists:
        kind = "folder" if directory else "file"
        raise MissingWeightsError(
            f"{feature}: {path}: no such {kind}; {hint} to {spec.expected} (get it from {spec.source})"
        )
    return path


#: Python objects that published checkpoints pickle besides tensors and plain containers.
_ALLOWED_GLOBALS: list = [argparse.Namespace]


def load_torch_checkpoint(path: Path, what: str):
    """``torch.load`` on CPU with the safe (weights-only) unpickler and a short allow-list.

    A checkpoint that needs other Python objects is still loaded, with full unpickling, after a warning:
    the user named this file explicitly, and it is the same trust fairseq and allosaurus themselves place
    in it (they call ``torch.load`` without ``weights_only``). Anything that is not a torch file at all
    becomes a :class:`CheckpointError`.
    """
    import torch

    try:
        with torch.serialization.safe_globals(_ALLOWED_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Weights only load failed" not in str(exc):
            raise CheckpointError(path, f"not a readable torch checkpoint ({_first_line(exc)}); expected {what}") from None
        first_error = exc
    except Exception as exc:  # noqa: BLE001 - torch raises KeyError/RuntimeError/EOFError/... on foreign bytes
        raise CheckpointError(path, f"not a readable torch checkpoint ({type(exc).__name__}: {_first_line(exc)}); expected {what}") from None
    try:
        unsafe = ", ".join(torch.serialization.get_unsafe_globals_in_checkpoint(path)) or "?"
    except Exception:  # noqa: BLE001 - only names the objects in the warning (legacy files cannot be listed)
        unsafe = "?"
    log.warning("%s: checkpoint pickles Python objects beyond tensors (%s); loading it with full unpickling. "
                "Only use checkpoints from a source you trust.", path, unsafe)
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means "not this checkpoint"
        detail = f"{_first_line(first_error)}; then {type(exc).__name__}: {_first_line(exc)}"
        raise CheckpointError(path, f"not a readable torch checkpoint ({detail}); expected {what}") from None


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:300]


def library_version(name: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return ""
