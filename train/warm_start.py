"""Warm start (``train --init-from CHECKPOINT``): a network starts from the weights of another run's checkpoint.

Every tensor of the checkpoint's model whose name and shape match one of the new model's is copied; the rest
(e.g. a tower for a language the checkpoint's model did not have) keep their usual initialisation. The use it is
made for: a multi-domain model trained on other languages (``--few-shot T=0``), adapted on a few-shot
language's K shots (docs/multidomain.md). The checkpoint is ``OUT/checkpoints/run<k>.pt`` or
``OUT/runs/run<k>.pt`` of a ``train`` run folder: a ``torch.save`` of a dict whose ``"model"`` is a state dict.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch

from sercore.errors import OptionError
from sercore.fsio import file_sha256

OPTION = "--init-from"


def checkpoint_digest(path: str | Path) -> str:
    """The SHA-256 of the checkpoint file (part of a run's fingerprint: a changed checkpoint is another run);
    :class:`OptionError` if it cannot be read."""
    try:
        return file_sha256(path)
    except OSError as exc:
        raise OptionError(OPTION, f"{path}: cannot read the checkpoint ({exc.strerror or exc})") from None


@lru_cache(maxsize=4)
def _weights(path: str, digest: str) -> dict[str, torch.Tensor]:
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # a truncated or foreign file: torch raises many kinds
        raise OptionError(OPTION, f"{path}: not a checkpoint torch can read ({type(exc).__name__}: {exc})") from None
    state = checkpoint.get("model") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise OptionError(OPTION, f"{path}: not a run checkpoint of train (no \"model\" state dict)")
    return state


def checkpoint_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The checkpoint's model state dict (read once per process and file content)."""
    return _weights(str(path), checkpoint_digest(path))


def warm_start(model: torch.nn.Module, path: str | Path) -> tuple[int, int]:
    """Copy into ``model`` every tensor of the checkpoint at ``path`` whose name and shape match one of its own.
    Returns (tensors copied, tensors of ``model``); :class:`OptionError` if none matches (another architecture)."""
    source = checkpoint_weights(path)
    own = model.state_dict()
    matched = {name: value for name, value in source.items() if name in own and own[name].shape == value.shape}
    if not matched:
        raise OptionError(OPTION, f"{path}: none of its weights fits this model (another --model, or other features "
                                  "or sizes); give a checkpoint of the same model and features")
    model.load_state_dict(matched, strict=False)
    return len(matched), len(own)
