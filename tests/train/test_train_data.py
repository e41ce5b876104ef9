"""Trainer data: domains from stores, refusals of bad stores, splits per run, batches and sampling."""

from collections import Counter

import h5py
import numpy as np
import pytest
import torch

from sercore.errors import StoreError
from sercore.store import UtteranceRecord, store_path, write_store
from train.augment import SequenceAugment
from train.model_io import collate
from train.dataset import ClassBalancedBatchSampler, FeatureDataset
from train.domains import default_features, load_domain, resolve_domain
from train.protocol import draw_split, n_runs, split_indices
from train.scaling import FeatureScaler
from tests._train_helpers import make_stores


def test_resolve_domain_by_code_explicit_name_and_scan(tmp_path):
    make_stores(tmp_path, dataset="emodb", language="de")
    make_stores(tmp_path, dataset="swahili", language="sw")
    assert str(resolve_domain("de", tmp_path)) == "de=emodb"
    assert str(resolve_domain("sw", tmp_path)) == "sw=swahili"  # found in the stores' language column
    assert str(resolve_domain("sw=other", tmp_path)) == "sw=other"
    with pytest.raises(StoreError, match="no feature store holds language 'fr'"):
        resolve_domain("fr", tmp_path)
    make_stores(tmp_path, dataset="swahili2", language="sw")
    with pytest.raises(StoreError, match="several datasets"):
        resolve_domain("sw", tmp_path)


def test_one_parser_for_domains():
    from train.config import DomainSpec

    assert DomainSpec.parse(" de ") == DomainSpec("de")
    assert DomainSpec.parse("de=emodb:/data/emo:db") == DomainSpec("de", "emodb", "/data/emo:db")
    assert str(DomainSpec.parse("de=emodb:/data")) == "de=emodb" and str(DomainSpec("de")) == "de"
    for bad in ("", "=emodb", "de=", "de=:/data"):
        with pytest.raises(ValueError, match="LANG=DATASET"):
            DomainSpec.parse(bad)


def test_the_corpus_registry_comes_from_the_preparers(tmp_path, monkeypatch):
    import extract.prepare.emovo as emovo
    from train.domains import corpus_registry

    assert corpus_registry() == {"de": ["emodb"], "it": ["emovo"], "fr": ["cafe"], "en": ["iemocap", "ravdess"]}
    monkeypatch.setattr(emovo, "LANGUAGE", "xx")  # a preparer's language is the only place it is written
    make_stores(tmp_path, dataset="emovo", language="xx")
    assert corpus_registry()["xx"] == ["emovo"] and str(resolve_domain("xx", tmp_path)) == "xx=emovo"


def test_load_domain_pools_splits_in_utt_id_order(tmp_path):
    make_stores(tmp_path, per_class=10)
    spec = resolve_domain("de=synth", tmp_path)
    assert default_features(spec, tmp_path) == ["ge2e", "mfcc"]
    data = load_domain(spec, tmp_path, ["mfcc", "ge2e"])
    assert len(data) == 40 and data.utt_ids == sorted(data.utt_ids)
    assert data.classes == ["neutral", "happy", "angry", "sad"]  # vocabulary order
    assert data.kinds == {"mfcc": "sequence", "ge2e": "embedding"} and data.dims() == {"mfcc": 6, "ge2e": 5}
    assert Counter(data.store_splits) == {"train": 24, "valid": 8, "test": 8}
    # seed 0 of the random protocol is the split the stores were written with (the manifest's)
    assert draw_split(data, "random", 0) == data.store_splits
    assert draw_split(data, "random", 1) != data.store_splits


def test_speaker_protocol_runs_every_fold_without_leakage(tmp_path):
    make_stores(tmp_path, speakers=5, per_class=10)
    data = load_domain(resolve_domain("de=synth", tmp_path), tmp_path, ["mfcc"])
    assert n_runs(data, "speaker", seeds=5) == 5 and n_runs(data, "random", seeds=3) == 3
    tested = Counter()
    for fold in range(5):
        splits = draw_split(data, "speaker", fold)
        for name in ("train", "valid", "test"):
            assert name in splits
        by_split = {s: {sp for sp, x in zip(data.speakers, splits) if x == s} for s in ("train", "valid", "test")}
        assert not (by_split["train"] & by_split["test"]) and not (by_split["valid"] & by_split["test"])
        tested.update(by_split["test"])
    assert tested == {f"spk{i}": 1 for i in range(5)}


def test_speaker_fold_without_some_emotion_is_reported_once_per_fold(tmp_path, caplog):
    import dataclasses

    make_stores(tmp_path, speakers=4, per_class=6)
    data = load_domain(resolve_domain("de=synth", tmp_path), tmp_path, ["mfcc"])
    with caplog.at_level("WARNING", logger="mgser.train"):
        for fold in range(4):
            draw_split(data, "speaker", fold)  # every speaker acts every emotion: nothing to report
    assert caplog.records == []
    # each speaker acts a single emotion (two speakers per emotion): no fold can test or validate every emotion
    confounded = dataclasses.replace(data, speakers=[f"{e}{i % 2}" for i, e in enumerate(data.emotions)])
    with caplog.at_level("WARNING", logger="mgser.train"):
        for fold in range(8):
            splits = draw_split(confounded, "speaker", fold)
            test = sorted({e for e, s in zip(confounded.emotions, splits) if s == "test"})
            valid = sorted({e for e, s in zip(confounded.emotions, splits) if s == "valid"})
            assert len(caplog.records) == fold + 1
            message = caplog.records[-1].getMessage()
            assert message.startswith(f"de fold {fold}: test lacks ")
            assert "; valid lacks " in message and "UA averages over the emotions present" in message
            assert all(e not in message.split("; valid")[0] for e in test) and all(e not in message.split("; valid")[1] for e in valid)


def test_speaker_protocol_refuses_too_few_speakers(tmp_path):
    make_stores(tmp_path, speakers=2)
    data = load_domain(resolve_domain("de=synth", tmp_path), tmp_path, ["mfcc"])
    with pytest.raises(StoreError, match="speaker protocol impossible"):
        draw_split(data, "speaker", 0)


def _rewrite_attr(path, key, value):
    with h5py.File(path, "r+") as f:
        f.attrs[key] = value


def test_refuses_foreign_corrupt_and_mixed_stores(tmp_path):
    make_stores(tmp_path)
    spec = resolve_domain("de=synth", tmp_path)
    with pytest.raises(StoreError, match="no feature 'wav2vec'"):
        load_domain(spec, tmp_path, ["wav2vec"])
    _rewrite_attr(store_path(tmp_path, "synth", "valid"), "dataset", "emovo")
    with pytest.raises(StoreError, match="belongs to dataset 'emovo'"):
        load_domain(spec, tmp_path, ["mfcc"])
    _rewrite_attr(store_path(tmp_path, "synth", "valid"), "dataset", "synth")
    with h5py.File(store_path(tmp_path, "synth", "test"), "r+") as f:
        f["features/mfcc"].attrs["checkpoint_sha256"] = "abc"
    with pytest.raises(StoreError, match="differs from the one in .*checkpoint_sha256"):
        load_domain(spec, tmp_path, ["mfcc"])
    store_path(tmp_path, "synth", "test").write_bytes(b"not hdf5 at all")
    with pytest.raises(StoreError, match="truncated or corrupt"):
        load_domain(spec, tmp_path, ["mfcc"])
    with pytest.raises(StoreError, match="no feature stores"):
        load_domain(resolve_domain("de=nothing", tmp_path), tmp_path, ["mfcc"])


def test_refuses_overlapping_stores_and_bad_values(tmp_path):
    attrs = {"ge2e": {"kind": "embedding", "dim": 2}}
    rec = lambda u, v=0.0: UtteranceRecord(u, "happy", "s1", "de", {"ge2e": np.array([v, 1.0])})  # noqa: E731
    write_store(store_path(tmp_path, "d", "train"), "d", "train", [rec("a"), rec("b")], attrs)
    write_store(store_path(tmp_path, "d", "test"), "d", "test", [rec("a")], attrs)
    with pytest.raises(StoreError, match="utterance 'a' is also in"):
        load_domain(resolve_domain("de=d", tmp_path), tmp_path, ["ge2e"])
    write_store(store_path(tmp_path, "d", "test"), "d", "test", [rec("c", np.nan)], attrs)
    with pytest.raises(StoreError, match="non-finite values"):
        load_domain(resolve_domain("de=d", tmp_path), tmp_path, ["ge2e"])


def test_collate_pads_with_zeros_and_keeps_lengths(tmp_path):
    make_stores(tmp_path)
    data = load_domain(resolve_domain("de=synth", tmp_path), tmp_path, ["mfcc", "ge2e"])
    ds = FeatureDataset(data, [0, 1, 2], data.classes, domain=3)
    batch = collate([ds[i] for i in range(3)])
    lengths = [data.features["mfcc"][i].shape[0] for i in range(3)]
    assert batch.lengths["mfcc"].tolist() == lengths
    assert batch.sequences["mfcc"].shape == (3, max(lengths), 6)
    for i, n in enumerate(lengths):
        assert torch.all(batch.sequences["mfcc"][i, n:] == 0)
        np.testing.assert_array_equal(batch.sequences["mfcc"][i, :n].numpy(), data.features["mfcc"][i])
    assert batch.embeddings["ge2e"].shape == (3, 5) and batch.domains.tolist() == [3, 3, 3]
    assert batch.utt_ids == data.utt_ids[:3] and len(batch) == 3


def test_scaler_uses_training_statistics_only(tmp_path):
    make_stores(tmp_path)
    data = load_domain(resolve_domain("de=synth", tmp_path), tmp_path, ["mfcc", "ge2e"])
    idx = split_indices(draw_split(data, "random", 0))
    scaler = FeatureScaler.fit(data, idx["train"])
    train = np.stack([scaler("ge2e", data.features["ge2e"][i]) for i in idx["train"]])
    np.testing.assert_allclose(train.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(train.std(0), 1, atol=1e-4)
    frames = np.concatenate([scaler("mfcc", data.features["mfcc"][i]) for i in idx["train"]])
    np.testing.assert_allclose(frames.mean(0), 0, atol=1e-5)
    test = np.stack([scaler("ge2e", data.features["ge2e"][i]) for i in idx["test"]])
    assert np.abs(test.mean(0)).max() > 1e-3  # not refitted on test


def test_balanced_sampler_gives_every_class_enough_samples():
    labels = [0] * 50 + [1] * 10 + [2] * 7
    sampler = ClassBalancedBatchSampler(labels, per_class=6, seed=3)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 4  # ceil(67 / 18)
    for b in batches:
        assert Counter(labels[i] for i in b) == {0: 6, 1: 6, 2: 6}
    # without replacement within a pool: the 10 samples of class 1 are all used before any repeats
    first_two = [i for b in batches[:1] for i in b if labels[i] == 1]
    assert len(set(first_two)) == 6
    sampler.set_epoch(1)
    assert list(sampler) != batches
    sampler.set_epoch(0)
    assert list(sampler) == batches  # deterministic per seed and epoch


def test_length_grouped_balanced_batches_stay_balanced_and_pad_less():
    rng = np.random.default_rng(0)
    labels = [0] * 60 + [1] * 40 + [2] * 30
    lengths = list(rng.integers(100, 900, size=len(labels)))
    plain = ClassBalancedBatchSampler(labels, per_class=8, seed=1)
    grouped = ClassBalancedBatchSampler(labels, per_class=8, seed=1, lengths=lengths)
    assert len(grouped) == len(plain) == 6
    cost = {}
    for name, sampler in (("plain", plain), ("grouped", grouped)):
        batches = list(sampler)
        for b in batches:
            assert Counter(labels[i] for i in b) == {0: 8, 1: 8, 2: 8}
        # what padding costs: every batch pads to its longest utterance
        cost[name] = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    assert cost["grouped"] < 0.8 * cost["plain"], cost
    batches = list(grouped)
    assert list(grouped) == batches  # deterministic per seed and epoch
    grouped.set_epoch(1)
    assert list(grouped) != batches
    with pytest.raises(ValueError, match="lengths"):
        ClassBalancedBatchSampler(labels, lengths=lengths[:-1])


def test_crop_augmentation_takes_contiguous_parts_and_is_seeded(tmp_path):
    make_stores(tmp_path, with_mel=True)
    data = load_domain(resolve_domain("de=synth", tmp_path), tmp_path, ["mfcc", "ge2e", "ge2e_mel"])
    idx = list(range(12))
    a = FeatureDataset(data, idx, data.classes, augment=SequenceAugment(crop=0.5), seed=1)
    b = FeatureDataset(data, idx, data.classes, augment=SequenceAugment(crop=0.5), seed=1)
    for k, i in enumerate(idx):
        full = data.features["mfcc"][i]
        example, twin = a[k], b[k]
        got = example.features["mfcc"].numpy()
        assert int(np.ceil(0.5 * len(full))) <= len(got) <= len(full)
        starts = [s for s in range(len(full) - len(got) + 1) if np.array_equal(full[s:s + len(got)], got)]
        assert starts, "a crop is a contiguous part of the utterance"
        np.testing.assert_array_equal(example.features["ge2e_mel"].numpy(), data.features["ge2e_mel"][i])  # untouched
        np.testing.assert_array_equal(got, twin.features["mfcc"].numpy())
    plain = FeatureDataset(data, idx, data.classes)
    assert all(np.array_equal(plain[k].features["mfcc"].numpy(), data.features["mfcc"][i]) for k, i in enumerate(idx))


def test_speaker_scaler_standardises_each_utterance_with_its_own_speakers_statistics(tmp_path):
    from train.scaling import SpeakerScaler

    root = make_stores(tmp_path / "features", per_class=6, speakers=3)
    data = load_domain(resolve_domain("de=synth", root), root, ["mfcc", "ge2e"])
    scaler = SpeakerScaler.fit(data)
    assert set(scaler.by_speaker) == set(data.speakers)
    for speaker in set(data.speakers):
        rows = [i for i, sp in enumerate(data.speakers) if sp == speaker]
        embeddings = np.stack([scaler("ge2e", data.features["ge2e"][i], i) for i in rows])
        np.testing.assert_allclose(embeddings.mean(0), 0.0, atol=1e-5)
        np.testing.assert_allclose(embeddings.std(0), 1.0, atol=1e-4)
        frames = np.concatenate([scaler("mfcc", data.features["mfcc"][i], i) for i in rows])
        np.testing.assert_allclose(frames.mean(0), 0.0, atol=1e-4)
    with pytest.raises(ValueError, match="index"):
        scaler("ge2e", data.features["ge2e"][0])


@pytest.mark.parametrize("mel_name, mel_role", [("vox_frames", True), ("ge2e_mel", False)])
def test_feature_roles_come_from_the_stores_provenance(tmp_path, mel_name, mel_role):
    """A feature the provenance marks ``input_of: ge2e`` is the fine-tuning input whatever its name (a store
    written before roles were recorded: ``ge2e_mel`` by its name), never a feature of its own nor cropped."""
    from train.domains import stored_features

    make_stores(tmp_path, with_mel=True, mel_name=mel_name, mel_role=mel_role)
    spec = resolve_domain("de=synth", tmp_path)
    assert stored_features(spec, tmp_path) == (["ge2e", "mfcc"], {"ge2e": mel_name})
    assert default_features(spec, tmp_path) == ["ge2e", "mfcc"]
    data = load_domain(spec, tmp_path, ["mfcc", "ge2e", mel_name])
    assert data.inputs == {"ge2e": mel_name}
    example = FeatureDataset(data, [0], data.classes, augment=SequenceAugment(crop=0.3, time_mask=0.5, feature_mask=0.5), seed=0)[0]
    np.testing.assert_array_equal(example.features[mel_name].numpy(), data.features[mel_name][0])


def test_the_mel_extractor_records_its_role_and_others_none():
    from extract.extractors import ExtractorSettings, extractor_class

    assert extractor_class("ge2e_mel").input_of == "ge2e"
    mfcc = extractor_class("mfcc")(ExtractorSettings())
    mfcc.load()
    assert "input_of" not in mfcc.provenance()
