"""CPU/GPU speed of the Hugging Face encoders at their published sizes, with random weights (timing only).

    python bench/ssl_speed.py --models wav2vec2-base,wavlm-large,whisper-small --clips 5 --device cpu

No checkpoint is downloaded: each architecture is instantiated from a ``transformers`` config with the published
sizes (random weights), saved with ``save_pretrained`` into a temporary folder and run through the ``ssl``
extractor exactly as ``extract`` would (all hidden layers, float16 output). The clips are generated (a harmonic
tone with noise) of ``--seconds`` each. Printed: seconds of computing per minute of audio, after one warm-up clip.
The outputs are random projections of the audio, never features to keep.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from extract.extractors import ExtractorSettings, extractor_class  # noqa: E402
from extract.extractors.ssl import import_transformers  # noqa: E402

LARGE = dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
             feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True)
SIZES = {
    # name: (model class, config class, config kwargs); the base sizes are transformers' defaults
    "wav2vec2-base": ("Wav2Vec2Model", "Wav2Vec2Config", {}),
    "hubert-base": ("HubertModel", "HubertConfig", {}),
    "wavlm-base": ("WavLMModel", "WavLMConfig", {}),
    "wav2vec2-large": ("Wav2Vec2Model", "Wav2Vec2Config", LARGE),  # XLS-R 300M / MMS 300M have these sizes
    "wavlm-large": ("WavLMModel", "WavLMConfig", LARGE),
    "whisper-small": ("WhisperModel", "WhisperConfig", dict(d_model=768, encoder_layers=12, encoder_attention_heads=12,
                                                             encoder_ffn_dim=3072, decoder_layers=1, num_mel_bins=80)),
    "whisper-large-v3": ("WhisperModel", "WhisperConfig", dict(d_model=1280, encoder_layers=32, encoder_attention_heads=20,
                                                                encoder_ffn_dim=5120, decoder_layers=1, num_mel_bins=128)),
}


def build(name: str, folder: Path) -> Path:
    tf = import_transformers()
    model_cls, config_cls, kwargs = SIZES[name]
    model = getattr(tf, model_cls)(getattr(tf, config_cls)(**kwargs))
    model.save_pretrained(folder)
    if model_cls == "WhisperModel":
        tf.WhisperFeatureExtractor(feature_size=kwargs["num_mel_bins"]).save_pretrained(folder)
    else:
        tf.Wav2Vec2FeatureExtractor(do_normalize=bool(kwargs)).save_pretrained(folder)
    return folder


def clip(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    return (0.2 * np.sin(2 * np.pi * (120 + 10 * seed) * t) + 0.02 * rng.standard_normal(len(t))).astype(np.float32)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="wav2vec2-base,wavlm-large,whisper-small")
    p.add_argument("--clips", type=int, default=5)
    p.add_argument("--seconds", type=float, default=3.0, help="length of each clip (EmoDB's median is 2.6 s)")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    import torch

    print(f"torch threads {torch.get_num_threads()}, device {args.device}, {args.clips} clips of {args.seconds} s")
    for name in args.models.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            folder = build(name, Path(tmp) / name)
            settings = ExtractorSettings(device=args.device, ssl={name: {"checkpoint": str(folder)}})
            ex = extractor_class(name, settings)(settings)
            ex.load()
            clips = [clip(args.seconds, i) for i in range(args.clips)]
            ex.extract(clips[0])
            start = time.perf_counter()
            outs = ex.extract_batch(clips) if args.device.startswith("cuda") else [ex.extract(c) for c in clips]
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            seconds = time.perf_counter() - start
            minutes = args.clips * args.seconds / 60
            mb_per_hour = outs[0].shape[1] * 2 * (1 / ex.provenance()["hop_seconds"]) * 3600 / 1e9
            print(f"{name:18s} {ex.n_parameters / 1e6:6.0f} M params, "
                  f"{ex.n_hidden_states} hidden states x {ex.layer_dim}: {seconds / minutes:7.2f} s per audio minute; "
                  f"float16 store {mb_per_hour:.1f} GB per audio hour", flush=True)


if __name__ == "__main__":
    main()
