"""The extractor tests' helpers: checkpoints in the published formats with random values
(:mod:`bench.checkpoint_builders`, which ``bench/make_test_checkpoints.py`` uses at the published sizes), and a
store round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.checkpoint_builders import (  # noqa: F401 - the tests import them from here
    TOY_PHONES, allosaurus_model_dir, byol_checkpoint, byol_state_shapes, hubert_checkpoint, wav2vec1_checkpoint,
    wav2vec2_checkpoint)


def store_roundtrip(tmp_path: Path, extractor, wavs: dict[str, np.ndarray]):
    """Extract ``wavs`` with ``extractor``, write them as the pipeline does (one part file), read them back.

    Returns ``(arrays in input order, feature attributes)`` as the trainer will see them.
    """
    from sercore.store import FeatureStore, UtteranceRecord, write_store

    records = [UtteranceRecord(utt_id=u, emotion="neutral", speaker="s1", language="de",
                               features={extractor.name: extractor.extract(w)}) for u, w in wavs.items()]
    path = write_store(tmp_path / "part.h5", "toy", "train", records, {extractor.name: extractor.provenance()})
    with FeatureStore(path) as store:
        order = [store.utt_ids.index(u) for u in wavs]
        arrays = store.read(extractor.name)
        return [arrays[i] for i in order], dict(store.features[extractor.name].attrs)
