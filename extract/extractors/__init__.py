"""Feature extractors, one module each, registered by name.

Imports are lazy: asking for ``mfcc`` must not import fairseq or allosaurus.
"""

from __future__ import annotations

import importlib

from .base import ExtractorSettings, FeatureExtractor, MissingWeightsError

# name -> "module:Class"
REGISTRY: dict[str, str] = {
    "mfcc": "extract.extractors.mfcc:MfccExtractor",
    "allosaurus": "extract.extractors.allosaurus:AllosaurusExtractor",
    "wav2vec": "extract.extractors.wav2vec:Wav2VecExtractor",
    "ge2e": "extract.extractors.ge2e:Ge2eExtractor",
    "byol": "extract.extractors.byol:ByolExtractor",
    "ge2e_mel": "extract.extractors.ge2e:Ge2eMelExtractor",
    # openSMILE's standard sets (optional extra [opensmile]; research-only licence)
    "egemaps": "extract.extractors.smile:EgemapsExtractor",
    "egemaps_lld": "extract.extractors.smile:EgemapsLldExtractor",
    "compare": "extract.extractors.smile:CompareExtractor",
}
NAMES: tuple[str, ...] = tuple(REGISTRY)
#: What each registered feature needs (``extract --help`` lists it).
NEEDS: dict[str, str] = {
    "mfcc": "nothing more (librosa)",
    "allosaurus": "the allosaurus extra and its model (--allosaurus-model)",
    "wav2vec": "the wav2vec extra (fairseq) and a wav2vec 2.0 / HuBERT checkpoint (--wav2vec-checkpoint)",
    "ge2e": "nothing more (resemblyzer ships its weights)",
    "byol": "a BYOL-A checkpoint (--byol-checkpoint)",
    "ge2e_mel": "nothing more (GE2E's mel frames, for --finetune-ge2e)",
    "egemaps": "the opensmile extra",
    "egemaps_lld": "the opensmile extra",
    "compare": "the opensmile extra",
}
#: What ``extract`` computes when ``--features`` is not given (each one whose weights are available): the
#: paper's features. openSMILE sets and the Hugging Face encoders are extracted when named.
DEFAULT_NAMES: tuple[str, ...] = ("mfcc", "allosaurus", "wav2vec", "ge2e", "byol", "ge2e_mel")


def extractor_class(name: str, settings: ExtractorSettings | None = None) -> type[FeatureExtractor]:
    """The extractor of feature ``name``: a registered one, or a Hugging Face encoder named in ``settings.ssl``
    (or one of the suggested encoder names, whose ``check_available`` then says how to configure it)."""
    if name in REGISTRY:
        module, cls = REGISTRY[name].split(":")
        return getattr(importlib.import_module(module), cls)
    from .ssl import SUGGESTED, ssl_extractor_class

    if (settings is not None and name in settings.ssl) or name in SUGGESTED:
        return ssl_extractor_class(name)
    configured = sorted(settings.ssl) if settings is not None else []
    raise ValueError(f"unknown feature {name!r}; known: {', '.join(NAMES)}"
                     + (f", and the encoders configured under ssl: {', '.join(configured)}" if configured else "")
                     + f" (a Hugging Face encoder needs --ssl {name}=CHECKPOINT)")


__all__ = ["ExtractorSettings", "FeatureExtractor", "MissingWeightsError", "REGISTRY", "NAMES", "extractor_class"]
