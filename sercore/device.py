"""Whether a torch device can be used here: one check for every command that takes ``--device``."""

from __future__ import annotations

from .errors import EnvironmentProblem


def check_cuda(device: str, option: str = "--device") -> None:
    """Refuse ``cuda`` / ``cuda:N`` on a machine without that CUDA device (:class:`EnvironmentProblem`, exit 4),
    before anything is loaded or written; any other device passes."""
    import torch

    parsed = torch.device(device)
    if parsed.type != "cuda":
        return
    if not torch.cuda.is_available():
        raise EnvironmentProblem(option, f"{device}: CUDA is not available on this machine (torch "
                                         f"{torch.__version__}, CUDA build {torch.version.cuda or 'none'}); use --device cpu")
    if parsed.index is not None and parsed.index >= torch.cuda.device_count():
        raise EnvironmentProblem(option, f"{device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
