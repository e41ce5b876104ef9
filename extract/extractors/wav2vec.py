"""wav2vec context features (Schneider et al. 2019) from a fairseq checkpoint, as in the paper.

The paper's feature is wav2vec 1.0's context representation ``c``: 512 channels every 10 ms from the
published ``wav2vec_large.pt``. The checkpoint is fairseq's format, a dict with the model's state dict
under ``"model"`` and the training configuration under ``"args"`` (an ``argparse.Namespace``, checkpoints
of 2019-2020) or ``"cfg"`` (a plain dict, later ones). The model is rebuilt from that configuration with
fairseq itself, so every size comes from the checkpoint, and the weights are loaded strictly.

Loading goes through fairseq's own upgrade of old checkpoints (``speech_pretraining`` -> ``audio_pretraining``,
``audio_cpc`` -> ``wav2vec``, argparse args -> dataclass config), but not through
``fairseq.checkpoint_utils.load_checkpoint_to_cpu`` itself: that calls ``torch.load`` with torch's default,
which since torch 2.6 refuses the pickled ``argparse.Namespace`` of the 2019 checkpoint.

The same loader accepts wav2vec 2.0 and HuBERT pre-trained (not fine-tuned) checkpoints, keeping the
transformer layer ``Wav2VecConfig.layer`` (``--wav2vec-layer``, 1-based; default: the last one, after the final layer norm).

fairseq: the official 0.12.2 does not install on Python 3.11; ``fairseq-fixed==0.12.3.1`` is a maintained
fork of 0.12 that does (docs/installation.md). It is imported only when this extractor loads.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from ._weights import CheckpointError, WeightsSpec, library_version, load_torch_checkpoint
from .base import ExtractorSettings
from .pretrained import PretrainedExtractor
from .registry import register, setting

WEIGHTS = WeightsSpec(
    field="checkpoint",
    expected="fairseq's wav2vec 1.0 checkpoint wav2vec_large.pt (or a wav2vec 2.0 / HuBERT pre-trained checkpoint)",
    source="https://dl.fbaipublicfiles.com/fairseq/wav2vec/wav2vec_large.pt",
)
_EXPECTED = "a fairseq wav2vec / wav2vec 2.0 / HuBERT checkpoint (a dict with 'model' and 'args' or 'cfg')"
_SUPPORTED = ("wav2vec", "wav2vec2", "hubert")


@contextlib.contextmanager
def _quiet_fairseq():
    # fairseq logs the whole model and config at INFO when building one, and hydra (which fairseq uses to
    # upgrade old configurations) warns about its own deprecated API: noise, once per worker.
    logger = logging.getLogger("fairseq")
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def import_fairseq():
    """Import fairseq without letting it reconfigure logging.

    Some fairseq modules call ``logging.basicConfig`` at import (one at DEBUG level), which would make every
    library in the worker log at DEBUG; the root logger's level and handlers are restored afterwards.
    """
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    try:
        with _quiet_fairseq():
            import fairseq  # noqa: F401 - imports (and registers) every fairseq model and task
            from fairseq import checkpoint_utils  # noqa: F401
            from fairseq.models.hubert import HubertModel  # noqa: F401
            from fairseq.models.wav2vec import Wav2Vec2Model, Wav2VecModel  # noqa: F401
    except ImportError as exc:
        raise CheckpointError(
            "fairseq", f"cannot import fairseq ({exc}); install the wav2vec extra: pip install -e '.[wav2vec]'"
        ) from None
    finally:
        root.setLevel(level)
        for handler in root.handlers[:]:
            if handler not in handlers:
                root.removeHandler(handler)


def read_fairseq_checkpoint(path: Path):
    """``(cfg, state_dict)`` of a fairseq checkpoint: the config upgraded by fairseq, as an OmegaConf tree."""
    import_fairseq()
    from fairseq import checkpoint_utils
    from omegaconf import OmegaConf

    state = load_torch_checkpoint(path, _EXPECTED)
    if not isinstance(state, dict) or not isinstance(state.get("model"), dict):
        raise CheckpointError(path, f"no 'model' state dict in this file; expected {_EXPECTED}")
    if state.get("cfg") is None and state.get("args") is None:
        raise CheckpointError(path, f"no 'args' or 'cfg' (the model's configuration) in this file; expected {_EXPECTED}")
    if state.get("cfg") is not None and not OmegaConf.is_config(state["cfg"]):
        state["cfg"] = OmegaConf.create(state["cfg"], flags={"allow_objects": True})
    # fairseq's upgrade also migrates training bookkeeping; give it the minimum it reads so that
    # checkpoints saved without optimizer state (inference-only exports) upgrade too.
    state.setdefault("optimizer_history", [{"optimizer_name": "", "lr_scheduler_state": {}, "num_updates": 0}])
    state.setdefault("extra_state", {})
    try:
        with _quiet_fairseq():
            state = checkpoint_utils._upgrade_state_dict(state)
    except Exception as exc:  # noqa: BLE001 - fairseq raises KeyError/AttributeError/... on foreign configs
        raise CheckpointError(path, f"fairseq cannot read its configuration ({type(exc).__name__}: {exc}); expected {_EXPECTED}") from None
    cfg = state.get("cfg")
    if cfg is None or cfg.get("model") is None:
        raise CheckpointError(path, f"the configuration names no model; expected {_EXPECTED}")
    return cfg, state["model"]


def _model_name(cfg) -> str:
    name = cfg.model.get("_name") or cfg.model.get("arch") or ""
    return str(name)


def build_fairseq_model(path: Path, cfg, state_dict: dict):
    """The fairseq module described by ``cfg``, with ``state_dict`` loaded strictly, in eval mode."""
    from fairseq.models.hubert import HubertModel
    from fairseq.models.wav2vec import Wav2Vec2Model, Wav2VecModel

    name = _model_name(cfg)
    if name not in _SUPPORTED:
        raise CheckpointError(path, f"model {name!r} is not supported; expected one of {', '.join(_SUPPORTED)} (pre-trained, not fine-tuned)")
    state_dict = dict(state_dict)
    try:
        with _quiet_fairseq():
            if name == "wav2vec":
                model = Wav2VecModel.build_model(cfg.model, task=None)
            elif name == "wav2vec2":
                model = Wav2Vec2Model.build_model(cfg.model, task=None)
            else:
                # HuBERT's pre-training head (label embeddings) is not used for features; build without it.
                final_dim = cfg.model.final_dim if cfg.model.final_dim > 0 else cfg.model.encoder_embed_dim
                n_label_sets = 1
                if cfg.model.get("untie_final_proj") and "final_proj.weight" in state_dict:
                    n_label_sets = state_dict["final_proj.weight"].shape[0] // final_dim
                state_dict.pop("label_embs_concat", None)
                model = HubertModel(cfg.model, cfg.task, [None] * n_label_sets)
    except CheckpointError:
        raise
    except Exception as exc:  # noqa: BLE001 - a config fairseq cannot build from
        raise CheckpointError(path, f"cannot build a {name} model from its configuration ({type(exc).__name__}: {exc})") from None
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        detail = " ".join(line.strip() for line in first[:3])[:600]
        raise CheckpointError(path, f"weights do not match the {name} model its configuration describes: {detail}") from None
    return model.eval()


@dataclass(frozen=True)
class Wav2VecConfig:
    """The fairseq checkpoint and, for wav2vec 2.0 / HuBERT, the transformer layer to keep (1-based; None: the last)."""

    checkpoint: Path | None = setting("wav2vec_checkpoint", option="--wav2vec-checkpoint", help="wav2vec checkpoint",
                                      env="MGSER_WAV2VEC_CHECKPOINT")
    layer: int | None = setting("wav2vec_layer", option="--wav2vec-layer",
                                help="wav2vec 2.0 / HuBERT: transformer layer to keep", kind="index")


@register("wav2vec", needs="the wav2vec extra (fairseq) and a wav2vec 2.0 / HuBERT checkpoint (--wav2vec-checkpoint)",
          config=Wav2VecConfig, default=True, rank=30)
class Wav2VecExtractor(PretrainedExtractor):
    """(frames, dim) context features every ``hop_seconds``: wav2vec 1.0 ``c`` (dim 512, 10 ms) by default.

    For wav2vec 2.0 / HuBERT checkpoints, the output of transformer layer ``config.layer`` (``--wav2vec-layer``;
    1-based; default the final output), dim = the encoder width, 20 ms hop.
    """

    kind: ClassVar = "sequence"
    weights: ClassVar[WeightsSpec] = WEIGHTS
    sample_rate: ClassVar[int] = 16000
    # The convolutional encoder needs 465 samples (wav2vec 1.0) / 400 (wav2vec 2.0) for one frame.
    min_seconds: ClassVar[float] = 0.05

    def __init__(self, settings: ExtractorSettings):
        super().__init__(settings)
        self._model = None
        self._arch = ""
        self._hop = 0
        self._normalize = False
        self._layer: int | None = None
        self._n_layers = 0

    def load(self) -> None:
        path = self.weights_path(self.settings)
        cfg, state_dict = read_fairseq_checkpoint(path)
        model = build_fairseq_model(path, cfg, state_dict)
        self._arch = _model_name(cfg)
        conv_layers = eval(cfg.model.conv_feature_layers)  # fairseq stores the layer list as a Python literal
        self._hop = int(np.prod([stride for _, _, stride in conv_layers]))
        if self._arch == "wav2vec":
            if model.vector_quantizer is not None:
                raise CheckpointError(path, "a vq-wav2vec checkpoint (quantised features) is not supported; expected wav2vec 1.0 such as wav2vec_large.pt")
            if self.config.layer is not None:
                raise CheckpointError(path, "wav2vec_layer applies to wav2vec 2.0 / HuBERT checkpoints; wav2vec 1.0 has one context output")
            aggregator = eval(cfg.model.conv_aggregator_layers) if cfg.model.aggregator == "cnn" else None
            dim = aggregator[-1][0] if aggregator else int(cfg.model.gru_dim)
        else:
            self._n_layers = int(cfg.model.encoder_layers)
            layer = self.config.layer
            if layer is not None and not 1 <= layer <= self._n_layers:
                raise CheckpointError(path, f"wav2vec_layer={layer}, but this model has transformer layers 1..{self._n_layers}")
            self._layer = layer
            dim = int(cfg.model.encoder_embed_dim)
            # Large wav2vec 2.0 / HuBERT models were trained on per-utterance standardised waveforms.
            self._normalize = bool(cfg.get("task") is not None and cfg.task.get("normalize", False))
        self._model = model.to(self.settings.device)
        self.loaded(path, dim)

    def extract(self, wav: np.ndarray) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        if self._model is None:
            raise RuntimeError("Wav2VecExtractor.extract called before load()")
        x = torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32))[None].to(self.settings.device)
        with torch.inference_mode():
            if self._arch == "wav2vec":
                z = self._model.feature_extractor(x)  # (1, channels, frames)
                c = self._model.feature_aggregator(z)  # (1, dim, frames)
                out = c[0].transpose(0, 1)
            else:
                if self._normalize:
                    x = F.layer_norm(x, x.shape[1:])
                if self._arch == "hubert":
                    out, _ = self._model.extract_features(x, padding_mask=None, mask=False, output_layer=self._layer)
                else:
                    layer = None if self._layer is None else self._layer - 1  # fairseq counts from 0
                    out = self._model.extract_features(x, padding_mask=None, mask=False, layer=layer)["x"]
                out = out[0]
        return out.float().cpu().numpy()

    def provenance(self) -> dict:
        output = "context c (aggregator output)" if self._arch == "wav2vec" else (
            f"transformer layer {self._layer} of {self._n_layers}" if self._layer else f"final transformer output ({self._n_layers} layers)"
        )
        return {
            **super().provenance(),
            "hop_seconds": self._hop / self.sample_rate,
            "architecture": self._arch,
            "output": output,
            "layer": self._layer if self._layer is not None else -1,
            "library_versions": {
                "fairseq": library_version("fairseq-fixed") or library_version("fairseq"),
                "torch": library_version("torch"),
            },
        }
