"""resemblyzer's GE2E speaker encoder as a trainable module, for fine-tuning on emotion (section 5.1).

The extraction stage stores both the ``ge2e`` embedding and ``ge2e_mel``, the mel frames resemblyzer's
``VoiceEncoder`` consumes (40 bands, 10 ms hop, 16 kHz). :class:`Ge2eEncoder` recomputes the embedding
from those frames exactly as ``VoiceEncoder.embed_utterance`` does -- windows of 160 frames every 77
frames (1.3 per second), the last window kept if at least 75% of it is real, the window embeddings
averaged and L2-normalised -- but batched and differentiable, so that its weights can be fine-tuned at
``lr * 0.01`` like the paper does.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from sercore.errors import StoreError


def partial_starts(n_frames: int, partial_frames: int = 160, frame_step: int = 77, min_coverage: float = 0.75) -> list[int]:
    """Window starts of ``VoiceEncoder.compute_partial_slices`` for an utterance of ``n_frames`` mel frames."""
    steps = max(1, n_frames - partial_frames + frame_step + 1)
    starts = list(range(0, steps, frame_step))
    coverage = (n_frames - starts[-1]) / partial_frames
    if coverage < min_coverage and len(starts) > 1:
        starts.pop()
    return starts


def resemblyzer_weights() -> Path:
    """The pretrained weights shipped inside the resemblyzer wheel."""
    import importlib.util

    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or not spec.origin:
        raise StoreError("resemblyzer", "the resemblyzer package is not installed (pip install resemblyzer)")
    return Path(spec.origin).parent / "pretrained.pt"


class Ge2eEncoder(nn.Module):
    """mel (batch, frames, 40) + lengths (batch,) -> (batch, 256) L2-normalised GE2E embedding.

    Same modules and parameter names as resemblyzer's ``VoiceEncoder`` (``lstm``, ``linear``), so its
    ``model_state`` loads directly.
    """

    def __init__(self, n_mels: int = 40, hidden: int = 256, layers: int = 3, embedding: int = 256,
                 partial_frames: int = 160, frame_step: int = 77, min_coverage: float = 0.75):
        super().__init__()
        self.lstm = nn.LSTM(n_mels, hidden, layers, batch_first=True)
        self.linear = nn.Linear(hidden, embedding)
        self.partial_frames, self.frame_step, self.min_coverage = partial_frames, frame_step, min_coverage
        self.output_dim = embedding

    @classmethod
    def pretrained(cls, path: str | Path | None = None) -> "Ge2eEncoder":
        """Load resemblyzer's checkpoint (``{"model_state": {...}}``); the default is the one in its wheel."""
        path = Path(path) if path else resemblyzer_weights()
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
            state = checkpoint["model_state"]
        except FileNotFoundError:
            raise StoreError(path, "GE2E weights not found") from None
        except (KeyError, TypeError, RuntimeError, OSError) as exc:
            raise StoreError(path, f"not a resemblyzer VoiceEncoder checkpoint ({type(exc).__name__}: {exc})") from None
        model = cls()
        state = {k: v for k, v in state.items() if k.startswith(("lstm.", "linear."))}  # drop the GE2E loss's w, b
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise StoreError(path, f"weights do not fit resemblyzer's VoiceEncoder: {str(exc).splitlines()[0]}") from None
        return model

    def forward(self, mels: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        windows, owners = [], []
        for i, n in enumerate(lengths.tolist()):
            for start in partial_starts(int(n), self.partial_frames, self.frame_step, self.min_coverage):
                stop = min(start + self.partial_frames, int(n))
                window = mels[i, start:stop]
                # resemblyzer zero-pads the waveform, whose mel frames are then zero
                windows.append(F.pad(window, (0, 0, 0, self.partial_frames - window.shape[0])))
                owners.append(i)
        _, (hidden, _) = self.lstm(torch.stack(windows))
        partial = F.normalize(torch.relu(self.linear(hidden[-1])), dim=-1)  # (windows, embedding)
        owner = torch.tensor(owners, device=mels.device)
        sums = torch.zeros(len(lengths), partial.shape[1], device=mels.device, dtype=partial.dtype).index_add(0, owner, partial)
        return F.normalize(sums, dim=-1)

