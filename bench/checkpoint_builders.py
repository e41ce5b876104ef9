"""Build checkpoints in the exact on-disk formats of the published weights, with random values.

Used by ``bench/make_test_checkpoints.py`` (published sizes) and the extractor tests (tiny sizes, through
``tests/_checkpoint_builders.py``) to run the whole extraction offline. Nothing here is a feature: the weights are random, only formats are real.

* wav2vec 1.0: fairseq's 2019 checkpoint dict (``args`` as an ``argparse.Namespace`` with the legacy task
  and criterion names of ``wav2vec_large.pt``, ``model`` state dict, optimizer history, extra state).
* wav2vec 2.0 / HuBERT: fairseq's later dict with ``cfg`` as a plain container (model + task sections).
* allosaurus: the model folder its downloader unpacks (``uni2005/``): ``am_config.json``, ``pm_config.json``,
  ``lm_config.json``, ``model.pt`` (the BiLSTM state dict), ``phone.txt``, ``inventory/index.json`` + lists.
* BYOL-A: a plain ``AudioNTT2020`` state dict, as ``AudioNTT2020-BYOLA-64x96d2048.pth``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import warnings
from pathlib import Path

import torch

from extract.extractors.wav2vec import import_fairseq  # fairseq without its logging side effects

# Sizes of the published wav2vec_large.pt (fairseq's Wav2VecConfig defaults are the large model's).
WAV2VEC_LARGE_FEATURES = "[(512, 10, 5), (512, 8, 4), (512, 4, 2), (512, 4, 2), (512, 4, 2), (512, 1, 1), (512, 1, 1)]"
WAV2VEC_LARGE_AGGREGATOR = (
    "[(512, 2, 1), (512, 3, 1), (512, 4, 1), (512, 5, 1), (512, 6, 1), (512, 7, 1), (512, 8, 1), "
    "(512, 9, 1), (512, 10, 1), (512, 11, 1), (512, 12, 1), (512, 13, 1)]"
)


def _training_bookkeeping() -> dict:
    return {
        "optimizer_history": [
            {"criterion_name": "BinaryCrossEntropyCriterion", "optimizer_name": "FairseqAdam",
             "lr_scheduler_state": {"best": 2.5}, "num_updates": 400000}
        ],
        "extra_state": {"train_iterator": {"epoch": 10, "iterations_in_epoch": 0}, "val_loss": 2.5},
        "last_optimizer_state": None,
    }


def wav2vec1_checkpoint(path: Path, *, dim: int = 32, aggregator_layers: int = 2, full_size: bool = False,
                        seed: int = 0) -> Path:
    """A wav2vec 1.0 checkpoint in the format of ``wav2vec_large.pt``; ``full_size`` uses its sizes (512 x 12)."""
    import_fairseq()
    from fairseq.models.wav2vec import Wav2VecConfig, Wav2VecModel

    if full_size:
        features, aggregator = WAV2VEC_LARGE_FEATURES, WAV2VEC_LARGE_AGGREGATOR
    else:
        features = str([(dim, 10, 5), (dim, 8, 4), (dim, 4, 2), (dim, 4, 2), (dim, 4, 2), (dim, 1, 1), (dim, 1, 1)])
        aggregator = str([(dim, k + 2, 1) for k in range(aggregator_layers)])
    model_args = {f.name: getattr(Wav2VecConfig(), f.name) for f in dataclasses.fields(Wav2VecConfig) if f.name != "infonce"}
    model_args.update(conv_feature_layers=features, conv_aggregator_layers=aggregator, log_compression=True,
                      skip_connections_agg=True, residual_scale=0.5)
    # The 2019 training run's argparse namespace: legacy task/criterion names, float lr, data as a list.
    args = argparse.Namespace(
        task="speech_pretraining", arch="wav2vec", criterion="binary_cross_entropy", data=["/data/librispeech"],
        optimizer="adam", lr=1e-5, lr_scheduler="cosine", sample_rate=16000, max_sample_size=150000,
        min_sample_size=8000, max_tokens=1500000, seed=1, **model_args,
    )
    torch.manual_seed(seed)
    model = Wav2VecModel(Wav2VecConfig(**{**model_args, "infonce": False}))
    # Saved in torch's legacy (pre-1.6, non-zip) serialization, as the 2019 file is.
    torch.save({"args": args, "model": model.state_dict(), **_training_bookkeeping()}, path,
               _use_new_zipfile_serialization=False)
    return path


def _fairseq_cfg_container(model_cfg, task_cfg, model_name: str, task_name: str) -> dict:
    import_fairseq()
    from fairseq.dataclass.configs import FairseqConfig
    from omegaconf import OmegaConf

    cfg = OmegaConf.structured(FairseqConfig())
    cfg.model = OmegaConf.structured(model_cfg)
    cfg.task = OmegaConf.structured(task_cfg)
    cfg.model["_name"] = model_name  # fairseq's key of the registered model / task name
    cfg.task["_name"] = task_name
    return OmegaConf.to_container(cfg, resolve=False, enum_to_str=True)


_SMALL_TRANSFORMER = dict(
    conv_feature_layers="[(32, 10, 5)] + [(32, 3, 2)] * 4 + [(32, 2, 2)] * 2",
    encoder_layers=2, encoder_embed_dim=48, encoder_ffn_embed_dim=64, encoder_attention_heads=4,
    final_dim=16, conv_pos=16, conv_pos_groups=4,
)


def wav2vec2_checkpoint(path: Path, *, normalize: bool = False, seed: int = 0, **sizes) -> Path:
    """A wav2vec 2.0 pre-training checkpoint (``cfg`` format), small transformer unless ``sizes`` say otherwise."""
    from fairseq.models.wav2vec import Wav2Vec2Config, Wav2Vec2Model
    from fairseq.tasks.audio_pretraining import AudioPretrainingConfig

    model_cfg = Wav2Vec2Config(**{**_SMALL_TRANSFORMER, "latent_vars": 8, "latent_groups": 2, **sizes})
    cfg = _fairseq_cfg_container(model_cfg, AudioPretrainingConfig(data="/data", normalize=normalize), "wav2vec2", "audio_pretraining")
    torch.manual_seed(seed)
    with warnings.catch_warnings():  # torch's deprecation of the weight_norm that fairseq's pos_conv uses
        warnings.simplefilter("ignore", FutureWarning)
        model = Wav2Vec2Model(model_cfg)
    torch.save({"cfg": cfg, "model": model.state_dict(), **_training_bookkeeping()}, path)
    return path


class _Labels:
    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n


def hubert_checkpoint(path: Path, *, n_labels: int = 100, seed: int = 0, **sizes) -> Path:
    """A HuBERT pre-training checkpoint (``cfg`` format, with its label-embedding head)."""
    from fairseq.models.hubert import HubertConfig, HubertModel
    from fairseq.tasks.hubert_pretraining import HubertPretrainingConfig

    model_cfg = HubertConfig(**{**_SMALL_TRANSFORMER, "label_rate": 50, **sizes})
    task_cfg = HubertPretrainingConfig(data="/data", labels=["km"], label_dir="/labels")
    cfg = _fairseq_cfg_container(model_cfg, task_cfg, "hubert", "hubert_pretraining")
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        model = HubertModel(model_cfg, task_cfg, [_Labels(n_labels)])
    torch.save({"cfg": cfg, "model": model.state_dict(), **_training_bookkeeping()}, path)
    return path


# A slice of the IPA inventory; the real uni2005 phone.txt lists ~230 phones, one per line.
TOY_PHONES = ["a", "b", "d", "e", "f", "i", "k", "l", "m", "n", "o", "p", "s", "t", "u", "v", "z", "ʃ", "ə", "ŋ"]


def allosaurus_model_dir(root: Path, *, name: str = "uni2005", hidden_size: int = 8, layer_size: int = 2,
                         phones: list[str] | None = None, seed: int = 0) -> Path:
    """The folder allosaurus's ``download_model`` unpacks (``<root>/<name>/``), with a small random BiLSTM.

    ``pm_config.json`` holds the published uni2005 front end (8 kHz, 40 MFCC, speaker CMVN, 3-frame stacking);
    sizes of the acoustic model come from ``am_config.json``, as in allosaurus.
    """
    from allosaurus.am.allosaurus_torch import AllosaurusTorchModel

    phones = list(phones or TOY_PHONES)
    model_dir = Path(root) / name
    (model_dir / "inventory").mkdir(parents=True, exist_ok=True)
    pm_config = {
        "model": "mfcc_hires", "backend": "numpy", "sample_rate": 8000, "window_size": 0.025, "window_shift": 0.01,
        "cep_size": 40, "bank_size": 40, "low_freq": 40, "high_freq": -200, "use_energy": False, "dither": 0.0,
        "cmvn": "speaker", "feature_window": 3, "dtype": "float32",
    }
    am_config = {
        "model": "allosaurus", "feat_size": 40 * 3, "hidden_size": hidden_size, "layer_size": layer_size,
        "proj_size": 0, "phone_size": len(phones) + 1, "lang_size_dict": {}, "loss": "ctc",
    }
    lm_config = {"model": "phone_ipa", "backend": "numpy"}
    for fname, content in (("pm_config.json", pm_config), ("am_config.json", am_config), ("lm_config.json", lm_config)):
        (model_dir / fname).write_text(json.dumps(content, indent=4))
    (model_dir / "phone.txt").write_text("".join(f"{p}\n" for p in phones), encoding="utf-8")
    index = [{"LanguageName": "German", "ISO6393": "deu", "GlottoCode": "stan1295", "phonelists": "deu.txt"}]
    (model_dir / "inventory" / "index.json").write_text(json.dumps(index), encoding="utf-8")
    (model_dir / "inventory" / "deu.txt").write_text("".join(f"{p}\n" for p in phones[:12]), encoding="utf-8")
    torch.manual_seed(seed)
    model = AllosaurusTorchModel(argparse.Namespace(**am_config))
    torch.save(model.state_dict(), model_dir / "model.pt", _use_new_zipfile_serialization=False)  # a 2020 file
    return model_dir


#: Every key of the published BYOL-A checkpoints (AudioNTT2020-BYOLA-64x96d{512,1024,2048}.pth), with its shape
#: for n_mels bands and embedding size d: three conv blocks (conv 3x3 64 ch, BatchNorm, ReLU, 2x2 max-pool) then
#: fc.0 (64 * n_mels / 8 -> d) and fc.3 (d -> d).
def byol_state_shapes(d: int, n_mels: int = 64) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    for conv, bn, c_in in ((0, 1, 1), (4, 5, 64), (8, 9, 64)):
        shapes[f"features.{conv}.weight"] = (64, c_in, 3, 3)
        shapes[f"features.{conv}.bias"] = (64,)
        for stat in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"features.{bn}.{stat}"] = (64,)
        shapes[f"features.{bn}.num_batches_tracked"] = ()
    shapes["fc.0.weight"] = (d, 64 * (n_mels // 8))
    shapes["fc.0.bias"] = (d,)
    shapes["fc.3.weight"] = (d, d)
    shapes["fc.3.bias"] = (d,)
    return shapes


def byol_checkpoint(path: Path, *, d: int = 64, n_mels: int = 64, prefix: str = "", wrap: str | None = None,
                    seed: int = 0) -> Path:
    """A BYOL-A ``AudioNTT2020`` state dict with the published key layout, random values (plausible BN stats).

    ``prefix`` ("module.", "model.") and ``wrap`` ("state_dict") reproduce how other trainers save it.
    """
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in byol_state_shapes(d, n_mels).items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(1000, dtype=torch.long)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=g) + 0.5
        elif key.endswith("running_mean"):
            state[key] = torch.rand(shape, generator=g) - 0.5
        elif key.startswith("features.") and key.split(".")[1] in ("1", "5", "9") and key.endswith("weight"):
            state[key] = torch.rand(shape, generator=g) + 0.5
        else:
            fan_in = max(1, int(torch.tensor(shape[1:]).prod())) if len(shape) > 1 else shape[0]
            state[key] = torch.randn(shape, generator=g) / fan_in**0.5
    state = {prefix + k: v for k, v in state.items()}
    torch.save({wrap: state} if wrap else state, path)
    return path
