"""`train` refuses corrupt or foreign stores with one line naming the file, and refuses leaky splits."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from sercore.errors import StoreError
from sercore.store import FeatureStore, UtteranceRecord, store_path, write_store
from train.cli import main
from train.domains import load_domain, resolve_domain
from train.protocol import draw_split
from tests._train_helpers import make_stores


def _train(stores, *extra):
    return CliRunner().invoke(main, ["--domains", "de=synth", "--features-dir", str(stores), "--epochs", "1",
                                     "--seeds", "1", "--quiet", "--out", str(stores.parent / "out"), *extra])


def _h5(path, edit):
    with h5py.File(path, "r+") as f:
        edit(f)


def _flip_data_chunk(path, feature="mfcc"):
    """Damage the bytes of a feature's first data chunk in place (as a failing disk would)."""
    with h5py.File(path, "r") as f:
        offset = f[f"features/{feature}/data"].id.get_chunk_info(0).byte_offset
    with open(path, "r+b") as fh:
        fh.seek(offset + 16)
        fh.write(bytes(64))


def _fake_sha(f):
    f["features/mfcc"].attrs["checkpoint_sha256"] = "0" * 64


DAMAGE = {
    # name: (what is done to features/synth/test.h5, what the message must say after the file name)
    "truncated_file": (lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size * 3 // 5]), "truncated or corrupt"),
    "not_hdf5": (lambda p: p.write_text("utt_id,emotion\nx,sad\n"), "not a readable HDF5 file"),
    "empty_file": (lambda p: p.write_bytes(b""), "not a readable HDF5 file"),
    "hdf5_but_not_a_store": (lambda p: h5py.File(p, "w").close(), "not a mgser-store file"),
    "other_format_version": (lambda p: _h5(p, lambda f: f.attrs.__setitem__("format_version", 99)), "store format version 99"),
    "missing_utterances_group": (lambda p: _h5(p, lambda f: f.__delitem__("utterances")), "missing group 'utterances'"),
    "missing_emotion_column": (lambda p: _h5(p, lambda f: f.__delitem__("utterances/emotion")), "corrupt feature store .*emotion"),
    "missing_offsets": (lambda p: _h5(p, lambda f: f.__delitem__("features/mfcc/offsets")), "corrupt feature store .*offsets"),
    "missing_data": (lambda p: _h5(p, lambda f: f.__delitem__("features/ge2e/data")), "corrupt feature store .*data"),
    "missing_feature": (lambda p: _h5(p, lambda f: f.__delitem__("features/mfcc")), "no feature 'mfcc' in this store"),
    "bad_offsets": (lambda p: _h5(p, lambda f: f["features/mfcc/offsets"].__setitem__(1, 10**6)), "inconsistent offsets"),
    "wrong_dim_attribute": (lambda p: _h5(p, lambda f: f["features/ge2e"].attrs.__setitem__("dim", 7)), r"data has shape \(\d+, 5\), expected \(\*, 7\)"),
    "damaged_data_block": (_flip_data_chunk, "corrupt data in feature 'mfcc', a damaged block or a failed checksum"),
    "other_checkpoint_hash": (lambda p: _h5(p, _fake_sha), "feature 'mfcc' differs from the one in .* in checkpoint_sha256"),
    "other_sample_rate": (lambda p: _h5(p, lambda f: f["features/mfcc"].attrs.__setitem__("sample_rate", 8000)), "differs .* in sample_rate"),
    "other_dataset": (lambda p: _h5(p, lambda f: f.attrs.__setitem__("dataset", "emovo")), "belongs to dataset 'emovo', not 'synth'"),
    "other_split": (lambda p: _h5(p, lambda f: f.attrs.__setitem__("split", "train")), "holds split 'train' but is named test.h5"),
    "nan_features": (lambda p: _h5(p, lambda f: f["features/ge2e/data"].__setitem__((0, 0), np.nan)), "non-finite values in feature 'ge2e'"),
    "unknown_emotion": (lambda p: _h5(p, lambda f: f["utterances/emotion"].__setitem__(0, "Grumpy")), "emotion 'Grumpy'"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_train_refuses_a_corrupt_or_foreign_store_naming_the_file(tmp_path, damage):
    stores = make_stores(tmp_path / "features", per_class=8)
    path = store_path(stores, "synth", "test")
    edit, message = DAMAGE[damage]
    edit(path)
    r = _train(stores)
    assert r.exit_code == 3  # data error, r.output
    import re

    line = r.output.strip().splitlines()[-1]
    assert line.startswith("error: ") and str(path) in line, line
    assert re.search(message, line), line
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_sample_rate_of_a_store_from_another_extraction_is_refused_even_when_alone(tmp_path):
    """Within one file every feature has one provenance; across the splits the first file is the reference."""
    stores = make_stores(tmp_path / "features", per_class=8)
    for split in ("valid", "test"):
        _h5(store_path(stores, "synth", split), lambda f: f["features/mfcc"].attrs.__setitem__("sample_rate", 8000))
    with pytest.raises(StoreError, match=r"valid\.h5: feature 'mfcc' differs from the one in .*train\.h5 in sample_rate"):
        load_domain(resolve_domain("de=synth", stores), stores, ["mfcc"])


def test_trainer_refuses_test_utterances_that_are_in_training(tmp_path):
    stores = tmp_path / "features"
    attrs = {"ge2e": {"kind": "embedding", "dim": 2}}
    rng = np.random.default_rng(0)
    recs = [UtteranceRecord(f"u{i}", ("happy", "sad")[i % 2], f"s{i % 3}", "de", {"ge2e": rng.normal(size=2)}) for i in range(12)]
    write_store(store_path(stores, "synth", "train"), "synth", "train", recs[:10], attrs)
    write_store(store_path(stores, "synth", "test"), "synth", "test", recs[8:], attrs)  # u8, u9 in both
    r = _train(stores)
    assert r.exit_code == 3  # data error
    assert f"{store_path(stores, 'synth', 'test')}: utterance 'u8' is also in {store_path(stores, 'synth', 'train')}" in r.output


def test_trainer_refuses_the_same_recording_under_two_ids(tmp_path):
    stores = make_stores(tmp_path / "features", per_class=8)
    with FeatureStore(store_path(stores, "synth", "train")) as s:
        copy = {n: s.read(n)[0] for n in ("mfcc", "ge2e")}
        first = s.utt_ids[0]
        rec = UtteranceRecord("copy_of_" + first, s.emotions[0], s.speakers[0], "de", copy)
    attrs = {"mfcc": {"kind": "sequence", "dim": 6, "extractor": "synthetic"}, "ge2e": {"kind": "embedding", "dim": 5, "extractor": "synthetic"}}
    write_store(store_path(stores, "synth", "test"), "synth", "test", [rec], attrs)
    r = _train(stores)
    assert r.exit_code == 3  # data error
    assert f"utterances 'copy_of_{first}' and '{first}' have identical features (the same recording twice?)" in r.output


def test_speaker_protocol_refuses_a_speaker_in_two_splits(tmp_path, monkeypatch):
    stores = make_stores(tmp_path / "features", per_class=8, speakers=4)
    data = load_domain(resolve_domain("de=synth", stores), stores, ["mfcc"])
    draw_split(data, "speaker", 0)  # the real folds are disjoint
    import train.protocol as td

    leaky = lambda speakers, fold, n_folds, seed, emotions=None: ["test" if i == 0 else "valid" if i % 5 == 1 else "train"  # noqa: E731
                                                   for i in range(len(speakers))]
    monkeypatch.setattr(td, "speaker_split", leaky)
    with pytest.raises(StoreError, match=r"leakage: speaker 'spk\d' is in both"):
        draw_split(data, "speaker", 0)
    monkeypatch.setattr(td, "random_split", lambda labels, seed: ["test" if i % 3 == 0 else "train" if i % 3 == 1 else "valid"
                                                                  for i in range(len(labels))])
    draw_split(data, "random", 1)  # under the random protocol a speaker may be in several splits (seed 0: the stores')


def test_a_split_shorter_than_the_domain_is_refused_not_truncated(tmp_path, monkeypatch):
    stores = make_stores(tmp_path / "features", per_class=8, speakers=4)
    data = load_domain(resolve_domain("de=synth", stores), stores, ["mfcc"])
    import train.protocol as td

    short = lambda labels, seed: ["train", "valid", "test"] * ((len(labels) - 1) // 3)  # noqa: E731 - drops the last utterance(s)
    monkeypatch.setattr(td, "random_split", short)
    with pytest.raises(StoreError, match=rf"{len(data)} utterance ids, {len(data)} speakers and \d+ splits"):
        draw_split(data, "random", 1)
