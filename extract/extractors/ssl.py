"""Self-supervised speech encoders from Hugging Face ``transformers`` checkpoints, every hidden layer kept.

Supported architectures (``model_type`` in the checkpoint's ``config.json``): ``wav2vec2`` (wav2vec 2.0,
XLS-R, MMS), ``hubert`` (HuBERT, mHuBERT), ``wavlm``, ``data2vec-audio`` and ``whisper`` (the encoder only).
Fine-tuned checkpoints (e.g. ``...ForCTC``) load too; only the encoder is used.

**Where the weights come from.** Nothing is ever downloaded. A feature's checkpoint is either a folder written
by ``save_pretrained`` (``config.json`` + ``model.safetensors`` or ``pytorch_model.bin``, and for Whisper its
``preprocessor_config.json``) or a model id (``microsoft/wavlm-large``) that is already in the local Hugging Face
cache (``hf download microsoft/wavlm-large`` once, on a machine with internet; ``HF_HOME`` moves the cache).

**Names.** Several encoders are extracted side by side under names the user chooses; each name maps to its
checkpoint and options in :attr:`ExtractorSettings.ssl` (``extract --ssl wavlm=microsoft/wavlm-large`` or a
``[ssl.wavlm]`` table in the ``MGSER_CONFIG`` weights file). Options per name:

* ``checkpoint``: folder or cached model id (required);
* ``layers``: which hidden states to store, ``"all"`` (default) or a list of indices into transformers'
  ``hidden_states`` (0 = the input of the first transformer layer, i.e. the projected CNN features with the
  positional convolution; n = the output of layer n; the last one is the model's final output);
* ``dtype``: ``"float16"`` (default; half the disk and memory) or ``"float32"``. A value beyond float16's range
  is refused (set ``dtype = "float32"`` for such a checkpoint) rather than stored as inf;
* ``max_chunk_seconds`` (default 20) and ``context_seconds`` (default 2): see chunking;
* ``batch_seconds``: audio per forward pass when batching (default 0 = one utterance at a time on the CPU,
  160 s on CUDA).

**Output.** A (frames, n_layers * width) sequence every 20 ms: the selected hidden states, each (frames, width),
concatenated layer by layer (``array.reshape(frames, n_layers, width)`` gives them back). The provenance records
``layers``, ``layer_dim``, ``model_type``, ``dtype`` and the SHA-256 of ``config.json`` plus the weight files, so
``predict`` refuses a bundle trained on another checkpoint. The trainer learns a softmax-weighted sum over the
stored layers (SUPERB's recipe; ``train/models/layer_weights.py``).

**Chunking and stitching.** Audio longer than one pass takes (``max_chunk_seconds`` for wav2vec-style models,
memory grows with the square of the length in self-attention; Whisper's fixed 30 s window, or less if
``max_chunk_seconds`` is smaller) is cut into chunks on the model's frame grid (multiples of 320 samples). Each
chunk keeps ``context_seconds`` of audio on either side as context; of its output only the frames of its own core
are kept, and the cores tile the utterance, so the stitched sequence has exactly the frames of one pass over the
whole audio, frame i covering samples [320 i, 320 i + 400). The context is cut to a quarter of a pass when
``context_seconds`` would take more. Frames whose receptive field ends within the
context are identical to the one-pass output up to the positional convolution's reach (for CNNs with layer norm;
the group-norm CNN of the base models normalises its first layer over the chunk); deeper layers see
``context_seconds`` rather than the whole utterance around a chunk boundary. Whisper's chunks are zero-padded to
its 30 s window as Whisper itself does.

**Normalisation.** wav2vec-style models standardise the waveform per utterance (over the whole utterance,
before chunking) when the checkpoint's ``preprocessor_config.json`` says ``do_normalize`` (the large / XLS-R /
MMS models); Whisper computes its own log-mel with the checkpoint's feature extractor.

**Batching.** ``extract`` hands the extractor every utterance of a worker's batch at once
(``extract --batch-size``); their chunks are sorted by length and run ``batch_seconds`` of audio per pass (default
60 s on the CPU, 160 s on CUDA; 0 = one chunk at a time), padded with an attention mask, so the outputs equal
one-at-a-time runs to float tolerance (tested on every architecture). wav2vec-style checkpoints whose CNN uses
layer norm (``feat_extract_norm == "layer"``: WavLM-large, XLS-R, MMS, the large models) run the whole padded batch
through the model; those with group norm (wav2vec 2.0 / HuBERT / WavLM base) run their CNN one chunk at a time
(zero padding would change group norm's statistics) and batch the transformer, which holds most of the
computation. Whisper's chunks are always padded to 30 s, so they batch exactly. data2vec-audio runs one chunk at a
time (:data:`UNBATCHED`): its positional embedding, a stack of convolutions with layer norm, carries padding into
the last real frames.

**Precision.** ``compute_dtype`` (``extract --ssl-compute-dtype``): ``"float32"`` (default), or on CUDA
``"float16"`` / ``"bfloat16"``, the model's weights and activations during the forward pass (about twice the
speed on tensor-core GPUs). It is recorded in the provenance but does not make a different feature: the stored
values are float16 by default anyway, and ``predict`` computes in float32 on the CPU.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import ClassVar, Sequence

import numpy as np

from sercore.errors import OptionError

from ._weights import CheckpointError, library_version
from .base import ExtractorSettings, MissingWeightsError, file_sha256
from .pretrained import PretrainedExtractor
from .registry import register_family

#: model_type (config.json) -> what it is, for messages.
SUPPORTED: dict[str, str] = {
    "wav2vec2": "wav2vec 2.0 / XLS-R / MMS",
    "hubert": "HuBERT / mHuBERT",
    "wavlm": "WavLM",
    "data2vec-audio": "data2vec-audio",
    "whisper": "Whisper (encoder)",
}
#: Names with a suggested checkpoint, so `--features wavlm` without a configured checkpoint says what to get.
SUGGESTED: dict[str, str] = {
    "wavlm": "microsoft/wavlm-large",
    "hubert": "facebook/hubert-large-ll60k",
    "wav2vec2": "facebook/wav2vec2-base",
    "xlsr": "facebook/wav2vec2-xls-r-300m",
    "mms": "facebook/mms-300m",
    "mhubert": "utter-project/mHuBERT-147",
    "data2vec": "facebook/data2vec-audio-large",
    "whisper": "openai/whisper-large-v3",
}
OPTIONS = ("checkpoint", "layers", "dtype", "max_chunk_seconds", "context_seconds", "batch_seconds", "compute_dtype")
DTYPES = ("float16", "float32")
COMPUTE_DTYPES = ("float32", "float16", "bfloat16")
_WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin")
#: Architectures run one chunk at a time: data2vec-audio's positional embedding is a stack of convolutions with
#: layer norm, through which padded frames reach the last real ones (batched frames differed by up to 1.6).
UNBATCHED = frozenset({"data2vec-audio"})


def import_transformers():
    """``import transformers``, first hiding a torchaudio that is installed but cannot load.

    transformers imports torchaudio whenever it is installed; a torchaudio built for another torch (fairseq pulls
    one in; its C++ extension fails with "Could not load this library") would make every transformers model fail
    to import. Marking it absent (``sys.modules["torchaudio"] = None``) lets transformers use its own audio code;
    nothing that worked is lost, since torchaudio itself cannot load in this process.
    """
    import sys

    if "torchaudio" not in sys.modules:
        try:
            import torchaudio  # noqa: F401
        except ImportError:
            pass
        except OSError:
            sys.modules["torchaudio"] = None
    import transformers

    return transformers


@dataclass(frozen=True)
class SslConfig:
    """One named encoder's options (module docstring); built from ``settings.ssl[name]`` by :meth:`of`."""

    checkpoint: str
    layers: tuple[int, ...] | None = None  # None: all
    dtype: str = "float16"
    max_chunk_seconds: float = 20.0
    context_seconds: float = 2.0
    batch_seconds: float | None = None  # None: 60 on CPU, 160 on CUDA
    compute_dtype: str = "float32"  # float16 / bfloat16: CUDA only

    @classmethod
    def of(cls, name: str, settings: ExtractorSettings) -> "SslConfig":
        entry = settings.ssl.get(name)
        if entry is None or not entry.get("checkpoint"):
            suggestion = SUGGESTED.get(name, "a folder written by save_pretrained, or a model id in the local cache")
            raise MissingWeightsError(
                f"{name}: no checkpoint configured; pass --ssl {name}=FOLDER_OR_MODEL_ID or put a [ssl.{name}] table with "
                f"checkpoint = ... in the MGSER_CONFIG weights file (e.g. {suggestion}; nothing is downloaded: "
                f"`hf download {SUGGESTED.get(name, 'MODEL_ID')}` once where there is internet)")
        unknown = sorted(set(entry) - set(OPTIONS))
        if unknown:
            raise OptionError("--ssl", f"ssl feature {name!r}: unknown option(s) {unknown}; known: {', '.join(OPTIONS)}")
        layers = entry.get("layers", "all")
        if isinstance(layers, str):
            if layers.strip().lower() == "all":
                layers = None
            else:
                try:
                    layers = [int(v) for v in layers.split(",")]
                except ValueError:
                    raise OptionError("--ssl-layers", f"ssl feature {name!r}: layers must be 'all' or indices like 0,6,12, got {layers!r}") from None
        if layers is not None:
            layers = tuple(int(v) for v in layers)
            if not layers or len(set(layers)) != len(layers):
                raise OptionError("--ssl-layers", f"ssl feature {name!r}: layers must be distinct indices, got {list(layers)}")
        dtype = str(entry.get("dtype", "float16"))
        if dtype not in DTYPES:
            raise OptionError("--ssl", f"ssl feature {name!r}: dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        compute = str(entry.get("compute_dtype", "float32"))
        if compute not in COMPUTE_DTYPES:
            raise OptionError("--ssl-compute-dtype", f"ssl feature {name!r}: compute_dtype must be one of "
                                                     f"{', '.join(COMPUTE_DTYPES)}, got {compute!r}")
        if compute != "float32" and not str(settings.device).startswith("cuda"):
            raise OptionError("--ssl-compute-dtype", f"ssl feature {name!r}: compute_dtype {compute} runs on CUDA only "
                                                     "(--device cuda); on the CPU use float32")
        opts = cls(str(entry["checkpoint"]), layers, dtype, float(entry.get("max_chunk_seconds", 20.0)),
                   float(entry.get("context_seconds", 2.0)),
                   None if entry.get("batch_seconds") is None else float(entry["batch_seconds"]), compute)
        if opts.batch_seconds is not None and opts.batch_seconds < 0:
            raise OptionError("--ssl", f"ssl feature {name!r}: batch_seconds must be 0 (no batching) or more, "
                                       f"got {opts.batch_seconds}")
        if opts.max_chunk_seconds <= 2 * opts.context_seconds:
            raise OptionError("--ssl", f"ssl feature {name!r}: max_chunk_seconds ({opts.max_chunk_seconds}) must exceed twice "
                             f"context_seconds ({opts.context_seconds})")
        return opts


def parse_ssl_option(values: Sequence[str], layers: str | None = None,
                     compute_dtype: str | None = None) -> dict[str, dict]:
    """``--ssl NAME=CHECKPOINT`` values (and ``--ssl-layers`` and ``--ssl-compute-dtype``, for each of them) ->
    ``ExtractorSettings.ssl``."""
    out: dict[str, dict] = {}
    for value in values:
        name, sep, checkpoint = value.partition("=")
        name, checkpoint = name.strip(), checkpoint.strip()
        if not sep or not name or not checkpoint or "," in name:
            raise ValueError(f"--ssl {value!r}: expected NAME=CHECKPOINT, e.g. wavlm=microsoft/wavlm-large")
        out[name] = {"checkpoint": checkpoint, **({"layers": layers} if layers else {}),
                     **({"compute_dtype": compute_dtype} if compute_dtype else {})}
    return out


def options_from_provenance(provenance: dict) -> dict:
    """The ``settings.ssl`` entry that re-creates a stored feature (``predict``: same checkpoint and layers)."""
    keys = ("checkpoint", "layers", "dtype", "max_chunk_seconds", "context_seconds")
    return {k: provenance[k] for k in keys if provenance.get(k) not in (None, "")}


def resolve_checkpoint(name: str, checkpoint: str) -> Path:
    """A ``save_pretrained`` folder as given, or the local-cache folder of a model id (never downloads)."""
    path = Path(checkpoint).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise CheckpointError(path, f"is a file; {name} needs a Hugging Face model folder (config.json and weights)")
    if checkpoint.count("/") != 1 or checkpoint.startswith(("/", ".", "~")):
        raise MissingWeightsError(f"{name}: {checkpoint}: no such folder (and not a model id like owner/model)")
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(checkpoint, local_files_only=True))
    except Exception as exc:  # noqa: BLE001 - LocalEntryNotFoundError and friends: not in the cache
        raise MissingWeightsError(
            f"{name}: model {checkpoint!r} is not in the local Hugging Face cache and nothing is downloaded "
            f"({type(exc).__name__}); run `hf download {checkpoint}` once on a machine with internet (and copy "
            f"$HF_HOME), or save it with save_pretrained and pass the folder") from None


def read_model_type(folder: Path) -> str:
    """The checkpoint's ``model_type``, refusing a folder that is not a supported speech encoder (one line naming it)."""
    config = folder / "config.json"
    expected = f"expected a transformers speech encoder ({', '.join(SUPPORTED)})"
    if not config.is_file():
        raise CheckpointError(folder, f"not a Hugging Face model folder (no config.json); {expected}")
    try:
        model_type = json.loads(config.read_text(encoding="utf-8")).get("model_type")
    except (ValueError, AttributeError, OSError) as exc:
        raise CheckpointError(config, f"unreadable config.json ({exc}); {expected}") from None
    if model_type not in SUPPORTED:
        raise CheckpointError(folder, f"model_type {model_type!r} is not a supported speech encoder; {expected}")
    if not any(next(folder.glob(p), None) for p in _WEIGHT_PATTERNS):
        raise CheckpointError(folder, f"no weights (model.safetensors or pytorch_model.bin) beside config.json; {expected}")
    return str(model_type)


def weights_sha256(folder: Path) -> str:
    """SHA-256 over config.json and the weight files, in name order (what decides whether two checkpoints agree)."""
    import hashlib

    files = [folder / "config.json"] + sorted({p for pat in _WEIGHT_PATTERNS for p in folder.glob(pat)})
    h = hashlib.sha256()
    for p in files:
        h.update(p.name.encode())
        h.update(bytes.fromhex(file_sha256(p)))
    return h.hexdigest()


@dataclass(frozen=True)
class Chunk:
    """Samples [start, stop) of one utterance go through the model; its output frames [keep_from, keep_to) are
    the utterance's frames [frame_from, frame_from + keep_to - keep_from)."""

    start: int
    stop: int
    keep_from: int
    keep_to: int
    frame_from: int


def plan_chunks(n_frames: int, stride: int, receptive_field: int, n_samples: int, max_samples: int,
                context_samples: int) -> list[Chunk]:
    """Cut an utterance of ``n_samples`` (``n_frames`` output frames on a grid of ``stride`` samples, each seeing
    ``receptive_field`` samples) into passes of at most ``max_samples`` with ``context_samples`` either side."""
    if n_samples <= max_samples:
        return [Chunk(0, n_samples, 0, n_frames, 0)]
    per_pass = (max_samples - receptive_field) // stride + 1  # frames one pass can produce
    ctx = min(context_samples // stride, per_pass // 4)  # context takes at most half of a pass
    core = per_pass - 2 * ctx
    chunks = []
    for a in range(0, n_frames, core):
        b = min(a + core, n_frames)
        lo, hi = max(0, a - ctx), min(n_frames, b + ctx)
        chunks.append(Chunk(lo * stride, min(n_samples, (hi - 1) * stride + receptive_field), a - lo, b - lo, a))
    return chunks


class SslExtractor(PretrainedExtractor):
    """(frames, n_layers * width) hidden states of a transformers speech encoder every 20 ms (module docstring).

    One subclass per user-chosen name (:func:`ssl_extractor_class`); ``name`` is that feature name.
    """

    name: ClassVar[str] = "ssl"
    config_class: ClassVar[type] = SslConfig
    kind: ClassVar = "sequence"
    sample_rate: ClassVar[int] = 16000
    # One frame needs the CNN's receptive field (400 samples); Whisper pads anything.
    min_seconds: ClassVar[float] = 0.05

    def __init__(self, settings: ExtractorSettings):
        super().__init__(settings)
        self.options: SslConfig | None = None
        self.model_type = ""
        self.layers: tuple[int, ...] = ()
        self.layer_dim = 0
        self.n_hidden_states = 0
        self._model = None
        self._processor = None
        self._normalize = False
        self._stride = 320
        self._receptive_field = 400
        self._window = 0  # Whisper: samples per 30 s window
        self._attention_mask = False

    @classmethod
    def configure(cls, settings: ExtractorSettings) -> SslConfig:
        return SslConfig.of(cls.name, settings)

    @classmethod
    def weights_path(cls, settings: ExtractorSettings) -> Path:
        return resolve_checkpoint(cls.name, cls.configure(settings).checkpoint)

    @classmethod
    def check_available(cls, settings: ExtractorSettings) -> None:
        cls.configure(settings)  # a bad option is a usage error, whether or not transformers is installed
        import_transformers()  # ImportError: reported as unavailable (install the [ssl] extra)

        read_model_type(cls.weights_path(settings))

    def load(self) -> None:
        transformers = import_transformers()
        opts = self.config
        folder = self.weights_path(self.settings)
        self.model_type = read_model_type(folder)
        transformers.logging.set_verbosity_error()  # unused decoder / CTC-head weights are expected, not news
        transformers.logging.disable_progress_bar()
        try:
            if self.model_type == "whisper":
                model = transformers.WhisperModel.from_pretrained(folder, local_files_only=True).get_encoder()
                self._processor = transformers.WhisperFeatureExtractor.from_pretrained(folder, local_files_only=True) \
                    if (folder / "preprocessor_config.json").is_file() else \
                    transformers.WhisperFeatureExtractor(feature_size=model.config.num_mel_bins)
            else:
                model = transformers.AutoModel.from_pretrained(folder, local_files_only=True)
        except Exception as exc:  # noqa: BLE001 - any loading failure: not this checkpoint
            detail = " ".join(str(exc).strip().splitlines()[:2])[:400]
            raise CheckpointError(folder, f"transformers cannot load this {self.model_type} checkpoint ({type(exc).__name__}: {detail})") from None
        config = model.config
        if self.model_type == "whisper":
            self.n_hidden_states = int(config.encoder_layers) + 1
            self.layer_dim = int(config.d_model)
            self._stride = 2 * int(self._processor.hop_length)
            self._receptive_field = self._stride  # frame i stands for samples [320 i, 320 (i + 1)) of the window
            self._window = int(config.max_source_positions) * self._stride
            self._attention_mask = True  # every chunk is padded to the window anyway
        else:
            self.n_hidden_states = int(config.num_hidden_layers) + 1
            self.layer_dim = int(config.hidden_size)
            self._stride = int(np.prod(config.conv_stride))
            rf, jump = 1, 1
            for k, s in zip(config.conv_kernel, config.conv_stride):
                rf, jump = rf + (k - 1) * jump, jump * s
            self._receptive_field = rf
            self._attention_mask = getattr(config, "feat_extract_norm", "group") == "layer"
            pre = folder / "preprocessor_config.json"
            self._normalize = bool(json.loads(pre.read_text()).get("do_normalize", False)) if pre.is_file() \
                else self._attention_mask  # without a preprocessor config: the large (layer-norm) models normalise
        layers = opts.layers if opts.layers is not None else tuple(range(self.n_hidden_states))
        bad = [i for i in layers if not 0 <= i < self.n_hidden_states]
        if bad:
            raise CheckpointError(folder, f"{self.name}: layers {bad} do not exist; this {self.model_type} model has hidden "
                                          f"states 0..{self.n_hidden_states - 1}")
        self.layers = tuple(layers)
        self.options = opts
        self._model = model.eval().to(self.settings.device, dtype=self._torch_dtype())
        self.loaded(folder, len(self.layers) * self.layer_dim, sha256=weights_sha256(folder))

    @property
    def n_parameters(self) -> int:
        """Parameters of the loaded encoder."""
        return sum(p.numel() for p in self._model.parameters()) if self._model is not None else 0

    # -- geometry -------------------------------------------------------------------------------------------------
    def n_frames(self, n_samples: int) -> int:
        """Output frames of one pass over ``n_samples`` (the CNN's length formula; Whisper: one per 320 samples)."""
        if self.model_type == "whisper":
            return max(1, math.ceil(n_samples / self._stride))
        n = n_samples
        for k, s in zip(self._model.config.conv_kernel, self._model.config.conv_stride):
            n = (n - k) // s + 1
        return max(0, n)

    def chunks(self, n_samples: int) -> list[Chunk]:
        max_samples = int(self.options.max_chunk_seconds * self.sample_rate)
        if self.model_type == "whisper":
            max_samples = min(max_samples, self._window)
        return plan_chunks(self.n_frames(n_samples), self._stride, self._receptive_field, n_samples, max_samples,
                           int(self.options.context_seconds * self.sample_rate))

    # -- running ----------------------------------------------------------------------------------------------------
    def _torch_dtype(self):
        import torch

        return getattr(torch, self.options.compute_dtype if self.options else "float32")

    def _forward(self, pieces: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Batch of waveforms -> list of (frames_i, n_layers, width) arrays in the stored dtype (float16 or float32).

        A batch of several pieces is zero-padded to the longest, with an attention mask; a group-norm CNN runs on
        each piece alone (:meth:`_cnn_one_by_one`), so every piece gives the frames it gives alone.
        """
        import torch

        device, dtype = self.settings.device, self._torch_dtype()
        with torch.inference_mode():
            if self.model_type == "whisper":
                feats = self._processor(list(pieces), sampling_rate=self.sample_rate, return_tensors="pt",
                                        padding="max_length", max_length=self._window, truncation=True).input_features
                out = self._model(feats.to(device, dtype), output_hidden_states=True)
            else:
                longest = max(len(p) for p in pieces)
                x = torch.zeros(len(pieces), longest)
                mask = torch.zeros(len(pieces), longest, dtype=torch.long)
                for i, p in enumerate(pieces):
                    x[i, :len(p)] = torch.from_numpy(p)
                    mask[i, :len(p)] = 1
                x = x.to(device, dtype)
                if len(pieces) == 1:
                    out = self._model(x, output_hidden_states=True)
                elif self._attention_mask:
                    out = self._model(x, attention_mask=mask.to(device), output_hidden_states=True)
                else:
                    out = self._cnn_one_by_one(x, mask.to(device), [len(p) for p in pieces])
            lengths = [self.n_frames(len(p)) for p in pieces]
            stacked = torch.stack([out.hidden_states[i] for i in self.layers], dim=2)  # (batch, frames, layers, width)
            # In the stored dtype already on the device: half the copy, and the range check where the values are
            if self.options.dtype == "float16":
                finite = bool(torch.isfinite(stacked).all())
                stacked = stacked.to(torch.float16)
                if finite and not bool(torch.isfinite(stacked).all()):
                    raise ValueError(f"{self.name}: hidden states reach beyond float16's range; set dtype = \"float32\" "
                                     "for this checkpoint")
            else:
                stacked = stacked.float()
            host = stacked.cpu().numpy()  # one copy per pass
            return [host[i, :n] for i, n in enumerate(lengths)]

    def _cnn_one_by_one(self, x, mask, lengths: Sequence[int]):
        """The model on a padded batch ``x`` (batch, samples) whose group-norm CNN runs on each unpadded piece alone.

        Group norm normalises the first convolution over the whole input, so padding would change every frame; the
        CNN's outputs of the pieces alone are zero-padded (the transformer masks those frames) and handed to the model
        in place of its CNN for this one pass.
        """

        cnn = self._model.feature_extractor
        feats = [cnn(x[i:i + 1, :n]) for i, n in enumerate(lengths)]  # each (1, channels, frames_i)
        padded = x.new_zeros(len(lengths), feats[0].shape[1], max(f.shape[-1] for f in feats))
        for i, f in enumerate(feats):
            padded[i, :, :f.shape[-1]] = f[0]
        self._model.feature_extractor = _given_class()(padded)
        try:
            return self._model(x, attention_mask=mask, output_hidden_states=True)
        finally:
            self._model.feature_extractor = cnn

    def _prepared(self, wav: np.ndarray) -> np.ndarray:
        wav = np.ascontiguousarray(wav, dtype=np.float32)
        if self._normalize:
            wav = (wav - wav.mean()) / np.sqrt(wav.var() + 1e-7)  # Wav2Vec2FeatureExtractor's zero_mean_unit_var_norm
        return wav

    def _batch_samples(self) -> int:
        seconds = self.options.batch_seconds
        if seconds is None:
            seconds = 160.0 if str(self.settings.device).startswith("cuda") else 60.0
        return int(seconds * self.sample_rate)

    def extract(self, wav: np.ndarray) -> np.ndarray:
        return self.extract_batch([wav])[0]

    def extract_batch(self, wavs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Every utterance's (frames, n_layers * width) array; chunks batched by length when batching is on."""
        if self._model is None:
            raise RuntimeError(f"{type(self).__name__}.extract called before load()")
        prepared = [self._prepared(w) for w in wavs]
        jobs = [(u, c) for u, w in enumerate(prepared) for c in self.chunks(len(w))]
        budget = self._batch_samples()
        batchable = budget > 0 and self.model_type not in UNBATCHED
        order = sorted(range(len(jobs)), key=lambda j: jobs[j][1].stop - jobs[j][1].start)
        outputs: dict[int, object] = {}
        group: list[int] = []
        for j in order + [None]:
            size = 0 if j is None else jobs[j][1].stop - jobs[j][1].start
            if group and (j is None or not batchable or (len(group) + 1) * max(size, self._window) > budget):
                pieces = [prepared[jobs[g][0]][jobs[g][1].start:jobs[g][1].stop] for g in group]
                for g, out in zip(group, self._forward(pieces)):
                    outputs[g] = out
                group = []
            if j is not None:
                group.append(j)
        results = []
        for u, w in enumerate(prepared):
            parts = [outputs[j][c.keep_from:c.keep_to] for j, (uu, c) in enumerate(jobs) if uu == u]
            frames = parts[0] if len(parts) == 1 else np.concatenate(parts)  # (frames, layers, width)
            if frames.shape[0] != self.n_frames(len(w)):
                raise RuntimeError(f"{self.name}: stitched {frames.shape[0]} frames, expected {self.n_frames(len(w))}")
            results.append(frames.reshape(frames.shape[0], -1))
        return results

    def provenance(self) -> dict:
        opts = self.options
        return {
            **super().provenance(),
            "hop_seconds": self._stride / self.sample_rate,
            "checkpoint": opts.checkpoint if opts else "",
            "model_type": self.model_type,
            "layers": list(self.layers),
            "layer_dim": self.layer_dim,
            "n_hidden_states": self.n_hidden_states,
            "dtype": opts.dtype if opts else "float32",
            "normalize": self._normalize,
            "max_chunk_seconds": opts.max_chunk_seconds if opts else 0.0,
            "context_seconds": opts.context_seconds if opts else 0.0,
            "compute_dtype": opts.compute_dtype if opts else "float32",
            "output": "transformers hidden_states[i] for i in layers, concatenated per frame",
            "library_versions": {"transformers": library_version("transformers"), "torch": library_version("torch")},
        }


@lru_cache(maxsize=None)
def _given_class():
    """An ``nn.Module`` that stands in for a CNN for one pass (torch imported only when a model runs)."""
    import torch

    class Given(torch.nn.Module):
        """Returns the features it holds, whatever its input."""

        def __init__(self, value):
            super().__init__()
            self.value = value

        def forward(self, _input):
            return self.value

    return Given


@lru_cache(maxsize=None)
def ssl_extractor_class(name: str) -> type[SslExtractor]:
    """The extractor class of the encoder the user named ``name`` (its checkpoint is ``settings.ssl[name]``)."""
    return type(f"SslExtractor_{name}", (SslExtractor,), {"name": name, "__module__": __name__})


register_family("ssl", extractor_of=ssl_extractor_class, suggested=tuple(SUGGESTED), config=SslConfig,
                needs="a Hugging Face speech encoder given with --ssl NAME=CHECKPOINT",
                hint="a Hugging Face encoder needs --ssl {name}=CHECKPOINT")
