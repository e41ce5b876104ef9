"""Allosaurus phone features (Li et al. 2020): frame-level log posteriors of the universal phone recogniser.

Weights: a model folder as allosaurus's own downloader unpacks it (``python -m allosaurus.bin.download_model
-m uni2005`` writes ``allosaurus/pretrained/uni2005/``), holding ``am_config.json``, ``pm_config.json``,
``lm_config.json``, ``model.pt``, ``phone.txt`` and ``inventory/``. Point ``--allosaurus-model`` at that
folder (or at a folder holding exactly one such model).

The model is built with allosaurus's own readers (``read_pm``, ``read_am``, ``read_lm``: what
``allosaurus.app.read_recognizer`` does, minus its download step, which would try the network whenever the
package's own ``pretrained/`` folder is empty). Audio goes through allosaurus's front end (resampled to the
model's rate, 8 kHz for uni2005, 40 MFCC, per-utterance CMVN, 3 stacked frames every 30 ms) and its
BiLSTM acoustic model, exactly as in ``Recognizer.recognize``.

Output (``AllosaurusConfig.output``, set by ``settings.extra["allosaurus_output"]``):

* ``"posteriors"`` (default): log-softmax of the phone layer over the model's whole phone inventory
  (``phone_size`` = blank + every phone of ``phone.txt``; about 230 for uni2005): what the recogniser decodes.
* ``"hidden"``: the last BiLSTM layer's output, ``2 * hidden_size`` per frame.
"""

from __future__ import annotations

import json
from argparse import Namespace
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from ._weights import CheckpointError, WeightsSpec, library_version
from .base import ExtractorSettings
from .pretrained import PretrainedExtractor
from .registry import extra, register, setting

WEIGHTS = WeightsSpec(
    field="model",
    expected="an allosaurus model folder such as uni2005/ (am_config.json, pm_config.json, model.pt, phone.txt, inventory/)",
    source="https://github.com/xinjli/allosaurus/releases/download/v1.0/uni2005.tar.gz",
)
MODEL_FILES = ("am_config.json", "pm_config.json", "lm_config.json", "model.pt", "phone.txt", "inventory/index.json")
OUTPUTS = ("posteriors", "hidden")


def resolve_model_dir(path: Path) -> Path:
    """``path`` itself if it is a model folder, else its only sub-folder that is one."""
    if (path / "am_config.json").is_file():
        return path
    candidates = sorted(p for p in path.iterdir() if p.is_dir() and (p / "am_config.json").is_file())
    if len(candidates) == 1:
        return candidates[0]
    if candidates:
        names = ", ".join(p.name for p in candidates)
        raise CheckpointError(path, f"holds several allosaurus models ({names}); pass the one to use")
    return path


@dataclass(frozen=True)
class AllosaurusConfig:
    """The model folder and what to output (module docstring)."""

    model: Path | None = setting("allosaurus_model", option="--allosaurus-model", help="Allosaurus model folder",
                                 env="MGSER_ALLOSAURUS_MODEL")
    output: str = extra("allosaurus_output", "posteriors")  # one of OUTPUTS


@register("allosaurus", needs="the allosaurus extra and its model (--allosaurus-model)", config=AllosaurusConfig,
          default=True, rank=20)
class AllosaurusExtractor(PretrainedExtractor):
    """(frames, dim) every 30 ms (uni2005): phone log posteriors (dim phone_size) or BiLSTM states."""

    kind: ClassVar = "sequence"
    weights: ClassVar[WeightsSpec] = WEIGHTS
    weights_are_folder: ClassVar[bool] = True
    #: Rate the pipeline delivers; allosaurus resamples to its model's own rate (pm_config.json) itself.
    sample_rate: ClassVar[int] = 16000
    # Per-utterance CMVN needs a few frames to have a variance.
    min_seconds: ClassVar[float] = 0.1

    def __init__(self, settings: ExtractorSettings):
        super().__init__(settings)
        self._pm = None
        self._am = None
        self._model_dir: Path | None = None
        self._output = str(self.config.output)
        self._hop = 0.0
        self._model_rate = 0

    @classmethod
    def check_available(cls, settings: ExtractorSettings) -> None:
        cls._model_dir_checked(settings)

    @staticmethod
    def _model_dir_checked(settings: ExtractorSettings) -> Path:
        model_dir = resolve_model_dir(AllosaurusExtractor.weights_path(settings))
        missing = [f for f in MODEL_FILES if not (model_dir / f).is_file()]
        if missing:
            raise CheckpointError(model_dir, f"not an allosaurus model folder, missing {', '.join(missing)}; expected {WEIGHTS.expected}")
        return model_dir

    def load(self) -> None:
        if self._output not in OUTPUTS:
            raise ValueError(f"allosaurus_output must be one of {', '.join(OUTPUTS)}, got {self._output!r}")
        from allosaurus.am.factory import read_am
        from allosaurus.lm.factory import read_lm
        from allosaurus.pm.factory import read_pm

        model_dir = self._model_dir_checked(self.settings)
        # allosaurus's inference config for the full IPA inventory on CPU (device_id -1), as read_recognizer builds it.
        inference_config = Namespace(model=model_dir.name, device_id=self._am_device_id(), lang="ipa",
                                     approximate=False, prior=None)
        try:
            pm = read_pm(model_dir, inference_config)
            am = read_am(model_dir, inference_config)
            read_lm(model_dir, inference_config)  # validates phone.txt / inventory as the recogniser would
        except (AssertionError, KeyError, TypeError, ValueError, RuntimeError, json.JSONDecodeError, OSError) as exc:
            detail = " ".join(str(exc).strip().splitlines()[:3])[:600] or type(exc).__name__
            raise CheckpointError(model_dir, f"allosaurus cannot load this model ({type(exc).__name__}: {detail}); expected {WEIGHTS.expected}") from None
        pm_config = json.loads((model_dir / "pm_config.json").read_text())
        self._model_rate = int(pm_config["sample_rate"])
        self._hop = float(pm_config["window_shift"]) * int(pm_config.get("feature_window", 1))
        self._pm, self._am = pm, am.eval()
        self._model_dir = model_dir
        self.loaded(model_dir, int(am.phone_size) if self._output == "posteriors" else 2 * int(am.hidden_size))

    def extract(self, wav: np.ndarray) -> np.ndarray:
        import torch
        from allosaurus.am.utils import move_to_tensor
        from allosaurus.audio import Audio

        if self._am is None:
            raise RuntimeError("AllosaurusExtractor.extract called before load()")
        # allosaurus reads 16-bit PCM and computes its features on integer-scaled samples.
        samples = np.asarray(wav, dtype=np.float32) * 32768.0
        feat = self._pm.compute(Audio(samples, self.sample_rate))
        feats = np.expand_dims(feat, 0)
        feat_len = np.array([feat.shape[0]], dtype=np.int32)
        batch_feat, batch_len = move_to_tensor([feats, feat_len], self._am_device_id())
        with torch.inference_mode():
            if self._output == "hidden":
                hidden, _ = self._am(batch_feat, batch_len, return_lstm=True)  # (frames, 1, 2 * hidden)
                out = hidden[:, 0]
            else:
                out = torch.log_softmax(self._am(batch_feat, batch_len)[0].float(), dim=-1)
        out = out.float().cpu().numpy()
        if not np.isfinite(out).all():
            raise ValueError("allosaurus features are not finite (silent or constant audio has no MFCC variance)")
        return out

    def _am_device_id(self) -> int:
        device = self.settings.device
        if device.startswith("cuda"):
            return int(device.split(":")[1]) if ":" in device else 0
        return -1

    def provenance(self) -> dict:
        return {
            **super().provenance(),
            "hop_seconds": self._hop,
            "model_name": self._model_dir.name if self._model_dir else "",
            "model_sample_rate": self._model_rate,
            "output": "log phone posteriors over the full inventory (index 0 = CTC blank)"
            if self._output == "posteriors" else "last BiLSTM layer output",
            "library_versions": {"allosaurus": library_version("allosaurus"), "torch": library_version("torch")},
        }
