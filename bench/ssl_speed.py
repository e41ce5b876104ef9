"""Speed of the Hugging Face encoders at their published sizes, with random weights: one utterance at a time against
batched across utterances, on the CPU or on CUDA (timing only).

    python bench/ssl_speed.py --models wavlm-base-plus,wavlm-large --clips 48 --device cpu
    python bench/ssl_speed.py --models wavlm-base-plus,wavlm-large --clips 535 --device cuda --cpu-clips 32

No checkpoint is downloaded: each architecture is instantiated from a ``transformers`` config with the published
sizes (random weights), saved with ``save_pretrained`` into a temporary folder and run through the ``ssl``
extractor exactly as ``extract`` runs it (all hidden layers, float16 output). The clips are generated (a harmonic
tone with noise), their lengths spread uniformly over 0.5-1.5 times ``--seconds`` (EmoDB's median is 2.6 s), the
same clips for every measurement. The outputs are random projections of the audio, never features to keep.

Measured per model, each after a warm-up pass, in this one process:

* ``one``: ``batch_seconds = 0``, one utterance per forward pass (what ``extract`` did before batching);
* ``batched``: every clip handed to ``extract_batch`` at once, padded passes of ``--batch-seconds`` of audio
  (on CUDA in ``--compute-dtype``, float16 by default);
* on CUDA also ``cpu``: batched on the CPU in float32 for the first ``--cpu-clips`` clips (the speed against CPU).

Printed per measurement: utterances per second, seconds per audio minute, peak memory (CPU: the process's peak
resident size so far, which only grows; CUDA: the peak allocated in that measurement); then one ``RESULT`` line per
model with the ratios and the largest difference between the outputs (relative to the largest value), which the
toolkit's tests bound on tiny models (``tests/extract/test_extractor_ssl.py``).
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np


from extract.extractors import ExtractorSettings, extractor_class
from extract.extractors.ssl import import_transformers

LARGE = dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
             feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True)
SIZES = {
    # name: (model class, config class, config kwargs); the base sizes are transformers' defaults
    "wav2vec2-base": ("Wav2Vec2Model", "Wav2Vec2Config", {}),
    "hubert-base": ("HubertModel", "HubertConfig", {}),
    "wavlm-base": ("WavLMModel", "WavLMConfig", {}),
    "wavlm-base-plus": ("WavLMModel", "WavLMConfig", {}),  # the same sizes as wavlm-base (more training data)
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
    return (0.2 * np.sin(2 * np.pi * (120 + 10 * (seed % 20)) * t) + 0.02 * rng.standard_normal(len(t))).astype(np.float32)


def clips(n: int, seconds: float) -> list[np.ndarray]:
    lengths = np.random.default_rng(0).uniform(0.5 * seconds, 1.5 * seconds, n)
    return [clip(float(s), i) for i, s in enumerate(lengths)]


def peak_mib(device: str) -> float:
    if device.startswith("cuda"):
        import torch

        return torch.cuda.max_memory_allocated() / 2 ** 20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def measure(name: str, folder: Path, audio: list[np.ndarray], device: str, *, batch_seconds: float,
            compute_dtype: str = "float32") -> tuple[list[np.ndarray], float, float]:
    """(outputs, seconds, peak MiB) of the ssl extractor on ``audio``; batch_seconds 0: one utterance per pass."""
    import torch

    options = {"checkpoint": str(folder), "batch_seconds": batch_seconds, "compute_dtype": compute_dtype}
    settings = ExtractorSettings(device=device, ssl={name: options})
    ex = extractor_class(name, settings)(settings)
    ex.load()
    ex.extract_batch(audio[:2])  # warm-up
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    outs = ex.extract_batch(audio) if batch_seconds > 0 else [ex.extract(a) for a in audio]
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    peak = peak_mib(device)
    del ex
    if cuda:
        torch.cuda.empty_cache()
    return outs, seconds, peak


def relative_difference(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    scale = max(float(np.abs(x).max()) for x in b)
    return max(float(np.abs(x.astype(np.float32) - y.astype(np.float32)).max()) for x, y in zip(a, b)) / scale


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="wavlm-base-plus,wavlm-large", help=f"comma-separated, of: {', '.join(SIZES)}")
    p.add_argument("--clips", type=int, default=48)
    p.add_argument("--seconds", type=float, default=2.6, help="median clip length (EmoDB's is 2.6 s)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-seconds", type=float, default=None,
                   help="audio per batched pass (default: the extractor's, 60 s on the CPU, 160 s on CUDA)")
    p.add_argument("--compute-dtype", default=None, help="batched pass on CUDA: float16 (default), bfloat16, float32")
    p.add_argument("--cpu-clips", type=int, default=32, help="on CUDA: clips also run batched on the CPU (0: none)")
    args = p.parse_args(argv)
    import torch

    cuda = args.device.startswith("cuda")
    compute = args.compute_dtype or ("float16" if cuda else "float32")
    batch_seconds = args.batch_seconds or (160.0 if cuda else 60.0)
    audio = clips(args.clips, args.seconds)
    minutes = sum(len(a) for a in audio) / 16000 / 60
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, device {args.device}"
          + (f" ({torch.cuda.get_device_name()})" if cuda else "")
          + f"; {args.clips} clips, {minutes * 60:.0f} s of audio; batched passes of {batch_seconds:g} s", flush=True)

    def line(name, what, n, seconds, peak):
        audio_minutes = sum(len(a) for a in audio[:n]) / 16000 / 60
        print(f"{name:16s} {what:34s} {n / seconds:8.2f} utt/s {seconds / audio_minutes:8.2f} s per audio minute, "
              f"peak {peak:8.0f} MiB", flush=True)
        return n / seconds

    for name in args.models.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            folder = build(name, Path(tmp) / name)
            one, s_one, peak = measure(name, folder, audio, args.device, batch_seconds=0)
            u_one = line(name, f"one at a time, float32 {args.device}", len(audio), s_one, peak)
            batched, s_b, peak = measure(name, folder, audio, args.device, batch_seconds=batch_seconds,
                                         compute_dtype=compute)
            u_b = line(name, f"batched, {compute} {args.device}", len(audio), s_b, peak)
            result = (f"RESULT {name} {args.device}: batched {compute} {u_b:.2f} utt/s, one at a time float32 "
                      f"{u_one:.2f} utt/s, ratio {u_b / u_one:.2f}; max relative difference {relative_difference(batched, one):.1e}")
            if cuda and args.cpu_clips > 0:
                n = min(args.cpu_clips, len(audio))
                cpu, s_cpu, peak = measure(name, folder, audio[:n], "cpu", batch_seconds=60.0)
                u_cpu = line(name, "batched, float32 cpu", n, s_cpu, peak)
                result += (f"; CPU batched float32 {u_cpu:.2f} utt/s ({n} clips), CUDA/CPU {u_b / u_cpu:.1f}x, "
                           f"max relative difference CUDA {compute} vs CPU {relative_difference(batched[:n], cpu):.1e}")
            print(result, flush=True)


if __name__ == "__main__":
    main()
