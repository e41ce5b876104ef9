"""Bad input to `train` and `predict` (issue 18): one line naming the file or option, the exit codes of
sercore/errors.py, nothing outside the run folder touched, bounded batches, checksummed bundles, near-duplicates."""

from __future__ import annotations

import errno
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from extract.extractors import ExtractorSettings
from sercore.errors import EXIT_DATA, EXIT_ENVIRONMENT, EXIT_USAGE, DataError, StoreError
from sercore.splits import random_split
from sercore.store import UtteranceRecord, store_path, write_store
from tests._train_helpers import EMOTIONS, base_args, make_stores, one_error_line, run_train
from train import run_records
from sercore.bundle import BundleError, read_bundle
from train.cli import main
from train.config import ConfigError, ExperimentConfig, TrainConfig
from predict.cli import main as predict_main


@pytest.fixture()
def stores(tmp_path):
    return make_stores(tmp_path / "features", dataset="synth", language="de", per_class=12, speakers=3)


def _records(seed: int = 0, per_class: int = 12, seq_dim: int = 6, emb_dim: int = 256) -> list[UtteranceRecord]:
    rng = np.random.default_rng(seed)
    records = []
    for k, emo in enumerate(EMOTIONS):
        centre = rng.normal(size=seq_dim) * 1.5
        for i in range(per_class):
            frames = int(rng.integers(20, 40))
            feats = {"mfcc": (centre + rng.normal(size=(frames, seq_dim))).astype(np.float32),
                     "ge2e": rng.normal(size=emb_dim).astype(np.float32)}
            records.append(UtteranceRecord(f"de_{emo}_{i:03d}", emo, f"spk{i % 3}", "de", feats))
    return records


def _write(root: Path, records: list[UtteranceRecord], splits: list[str] | None = None, hop: float = 0.01) -> Path:
    records = sorted(records, key=lambda r: r.utt_id)
    splits = splits or random_split([r.emotion for r in records], seed=0)
    attrs = {"mfcc": {"kind": "sequence", "dim": records[0].features["mfcc"].shape[1], "extractor": "synthetic", "hop_seconds": hop},
             "ge2e": {"kind": "embedding", "dim": records[0].features["ge2e"].shape[0], "extractor": "synthetic"}}
    for split in ("train", "valid", "test"):
        write_store(store_path(root, "synth", split), "synth", split, [r for r, s in zip(records, splits) if s == split], attrs)
    return root


# --------------------------------------------------------------------------------------------------
# --overwrite removes only what this command's run folder owns


def test_overwrite_leaves_other_experiments_below_out_alone(stores, tmp_path):
    parent = tmp_path / "experiments"
    other = parent / "other_experiment"
    assert run_train(*base_args(stores, other)).exit_code == 0
    notes = parent / "notes"
    notes.mkdir()
    (notes / "metrics.json").write_text('{"mine": true}')
    before = {p: p.read_bytes() for p in other.rglob("*") if p.is_file()}
    assert any(p.parent.name == "runs" for p in before) and (other / "model.bundle") in before

    r = run_train(*base_args(stores, parent), "--overwrite")
    assert r.exit_code == 0, r.output
    assert {p: p.read_bytes() for p in other.rglob("*") if p.is_file()} == before
    assert (notes / "metrics.json").read_text() == '{"mine": true}'
    assert (parent / "metrics.json").is_file() and (parent / "runs" / "run0.json").is_file()
    # and the run folder's own finished runs are forgotten by a second --overwrite (it refits)
    r = run_train(*base_args(stores, parent), "--overwrite")
    assert r.exit_code == 0 and f"removed the finished runs and their metrics in {parent}" in r.output
    assert "finished earlier" not in r.output and {p: p.read_bytes() for p in other.rglob("*") if p.is_file()} == before


def test_owned_run_folders_of_a_comparison_and_of_ablations(tmp_path):
    assert run_records.owned_run_folders(tmp_path) == [tmp_path]
    assert run_records.owned_run_folders(tmp_path, ["base", "nas"]) == [tmp_path / "base", tmp_path / "nas"]
    for name in ("all_features", "only_mfcc", "someone_elses"):
        (tmp_path / "ablations" / name).mkdir(parents=True)
    assert run_records.owned_run_folders(tmp_path, ["single"], ablations=True) == [
        tmp_path / "ablations" / "all_features", tmp_path / "ablations" / "only_mfcc"]


# --------------------------------------------------------------------------------------------------
# Option ranges (click and the configuration dataclasses), a non-finite loss


@pytest.mark.parametrize("option,value", [
    ("--alpha", "nan"), ("--alpha", "-5"), ("--alpha", "inf"), ("--ema", "2"), ("--ema", "-1"), ("--ema", "1"),
    ("--label-smoothing", "-1"), ("--label-smoothing", "5"), ("--lr", "0"), ("--lr", "nan"), ("--dropout", "1"),
    ("--weight-decay", "-1"), ("--nas-l0", "-1"), ("--crop", "2"), ("--time-mask", "1.5"), ("--mixup", "-0.1"), ("--max-seconds", "0"), ("--max-batch-gb", "-1"),
])
def test_out_of_range_options_are_usage_errors_naming_the_option(stores, tmp_path, option, value):
    r = run_train(*base_args(stores, tmp_path / "out"), option, value)
    assert r.exit_code == EXIT_USAGE and option in r.output, r.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("options,words", [
    (["--gate-init", "mfcc=0.6"], "add gate_bias"),  # the configuration's own check, reported as a usage error
    (["--gate-init", "mfcc=1.2", "--gate-bias"], "must be in (0, 1), got 1.2"),
    (["--gate-init", "mfcc", "--gate-bias"], "expected FEATURE=W"),
    (["--few-shot", "de=2.5"], "expected LANG=K"),
])
def test_options_the_configuration_refuses_are_usage_errors_naming_the_option(stores, tmp_path, options, words):
    r = run_train(*base_args(stores, tmp_path / "out"), *options)
    line = one_error_line(r.output)
    assert r.exit_code == EXIT_USAGE and options[0] in line and words in line, r.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("field,value,message", [
    ("alpha", float("nan"), "train.alpha: must be a finite number"),
    ("alpha", -5.0, "train.alpha: must be in [0, 1000]"),
    ("ema", 2.0, "train.ema: must be in [0, 1)"),
    ("ema", -1.0, "train.ema: must be in [0, 1)"),
    ("label_smoothing", -1.0, "train.label_smoothing: must be in [0, 1]"),
    ("label_smoothing", 5.0, "train.label_smoothing: must be in [0, 1]"),
    ("epochs", 0, "train.epochs: must be in [1, 100000]"),
    ("epochs", 2.5, "train.epochs: must be an integer"),
    ("per_class", True, "train.per_class: must be an integer"),
    ("sampler", "random", "train.sampler: must be one of balanced, shuffle"),
])
def test_configuration_values_are_checked_where_they_are_built(field, value, message):
    with pytest.raises(ConfigError) as info:
        TrainConfig(**{field: value})
    assert str(info.value).startswith(message) and info.value.exit_code == EXIT_DATA  # a bad configuration file is bad data
    config = ExperimentConfig(domains=["de"]).to_dict()
    config["train"][field] = value
    with pytest.raises(ConfigError, match=field):  # a config.json / bundle goes through the same check
        ExperimentConfig.from_dict(config)


def test_a_non_finite_loss_stops_the_run_with_one_line(stores, tmp_path, monkeypatch):
    from train.network_trainer import Trainer

    original = Trainer.loss

    def poisoned(self, output, batch, mixed=None):
        loss, ce, aux = original(self, output, batch, mixed)
        return loss * float("nan"), ce, aux

    monkeypatch.setattr(Trainer, "loss", poisoned)
    out = tmp_path / "nan"
    r = run_train(*base_args(stores, out))
    line = one_error_line(r.output)
    assert r.exit_code == EXIT_DATA and "the training loss became nan at epoch 1, batch 1" in line
    assert not (out / "metrics.json").exists() and not list((out / "runs").glob("*.json"))


# --------------------------------------------------------------------------------------------------
# Section 5: one line naming the option or file, the documented exit code


def _cases(tmp_path):
    (tmp_path / "a_file").write_text("x")
    cases = [
        (["--domains", ","], EXIT_USAGE, "--domains"),
        (["--domains", " , =x"], EXIT_USAGE, "--domains"),
        (["--out", str(tmp_path / "a_file")], EXIT_USAGE, "a_file"),
        (["--device", "gpu"], EXIT_USAGE, "--device: unknown device 'gpu'"),
        (["--device", "tpu"], EXIT_USAGE, "--device"),
        (["--label-smoothing", "5"], EXIT_USAGE, "--label-smoothing"),
    ]
    if not torch.cuda.is_available():
        cases.append((["--device", "cuda"], EXIT_ENVIRONMENT, "--device: cuda: CUDA is not available on this machine"))
    return cases


def test_bad_train_options_end_in_one_line(stores, tmp_path):
    for args, code, text in _cases(tmp_path):
        base = dict(zip(base_args(stores, tmp_path / "out")[::2], base_args(stores, tmp_path / "out")[1::2]))
        base.update(dict(zip(args[::2], args[1::2])))
        r = run_train(*[x for kv in base.items() for x in kv])
        assert r.exit_code == code, (args, r.output)
        assert text in one_error_line(r.output), (args, r.output)


def test_an_unwritable_out_is_an_environment_error_before_any_work(stores, tmp_path, monkeypatch):
    out = tmp_path / "locked" / "run"
    real_mkdir = Path.mkdir

    def mkdir(self, *args, **kwargs):
        if str(self).startswith(str(tmp_path / "locked")):
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    r = run_train(*base_args(stores, out))
    line = one_error_line(r.output)
    assert r.exit_code == EXIT_ENVIRONMENT and line == f"error: {out}: permission denied", r.output


def test_a_full_disk_is_one_line_and_damages_nothing_committed(stores, tmp_path, monkeypatch):
    out = tmp_path / "full"
    assert run_train(*base_args(stores, out)).exit_code == 0
    committed = {p: p.read_bytes() for p in (out / "runs").iterdir()}
    real_write = Path.write_bytes

    def write_bytes(self, data):  # the disk fills up while the second run's checkpoint is written
        if self.name.startswith("run1.pt"):
            with open(self, "wb") as f:
                f.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real_write(self, data)

    monkeypatch.setattr(Path, "write_bytes", write_bytes)
    r = run_train(*base_args(stores, out)[:-4], "--seeds", "2", "--out", str(out))
    line = one_error_line(r.output)
    assert r.exit_code == EXIT_ENVIRONMENT and line.endswith("no space left on device") and "run1.pt" in line, r.output
    assert {p: p.read_bytes() for p in (out / "runs").iterdir()} == committed  # no partial file left, run0 intact
    monkeypatch.undo()
    r = run_train(*base_args(stores, out)[:-4], "--seeds", "2", "--out", str(out))
    assert r.exit_code == 0 and "finished earlier" in r.output, r.output


def test_environment_problem_maps_errno(tmp_path):
    from sercore.errors import EnvironmentProblem, environment_problem

    p = environment_problem(OSError(errno.EROFS, "Read-only file system", str(tmp_path)))
    assert isinstance(p, EnvironmentProblem) and str(p) == f"{tmp_path}: read-only file system"
    assert environment_problem(OSError(errno.ENOENT, "x", "y")) is None


@pytest.mark.parametrize("text,problem", [
    ('wav2vec_checkpoint = 5', "'wav2vec_checkpoint' must be a path written as a non-empty string, got 5"),
    ('byol_checkpoint = true', "'byol_checkpoint' must be a path written as a non-empty string, got True"),
    ('allosaurus_model = ["a", "b"]', "'allosaurus_model' must be a path written as a non-empty string"),
    ('_PATHS = ["x"]', "unknown keys ['_PATHS']"),
    ('ENV = "x"', "unknown keys ['ENV']"),
    ('wav2vec_layer = -2', "'wav2vec_layer' must be a non-negative integer"),
])
def test_weights_file_values_of_the_wrong_type(tmp_path, monkeypatch, text, problem):
    cfg = tmp_path / "weights.toml"
    cfg.write_text(text)
    monkeypatch.setenv("MGSER_CONFIG", str(cfg))
    with pytest.raises(DataError) as info:
        ExtractorSettings().with_env_defaults()
    assert str(info.value).startswith(f"{cfg}: ") and problem in str(info.value)
    if "unknown keys" in problem:  # the list of what is allowed offers the settings, not the class constants
        offered = str(info.value).split("expected some of", 1)[1]
        assert "wav2vec_checkpoint" in offered and not any(k in offered for k in ("CONFIG_ENV", "'ENV'", "_PATHS"))


def test_a_weights_file_that_is_not_utf8_is_named(tmp_path):
    cfg = tmp_path / "weights.toml"
    cfg.write_bytes(b'wav2vec_checkpoint = "/m/\xff\xfe.pt"\n')
    with pytest.raises(DataError, match=rf"^{cfg}: the weights file is not UTF-8 text"):
        ExtractorSettings.from_file(cfg)


# --------------------------------------------------------------------------------------------------
# Bundles: a checksum that predict verifies; damaged entries refused naming the file


@pytest.fixture()
def bundle(stores, tmp_path):
    out = tmp_path / "trained"
    r = run_train(*base_args(stores, out), "--features", "mfcc")
    assert r.exit_code == 0, r.output
    return out / "model.bundle"


def _predict(bundle_path, tmp_path):
    wav = tmp_path / "never_read.wav"
    wav.write_bytes(b"")
    return CliRunner().invoke(predict_main, ["--model", str(bundle_path), str(wav), "--quiet"])


def _rewrite(src: Path, dest: Path, edit) -> Path:
    payload = dict(torch.load(src, weights_only=True))
    edit(payload)
    torch.save(payload, dest)
    return dest


def test_a_bundle_with_flipped_bytes_in_its_tensor_data_is_refused(bundle, tmp_path):
    assert read_bundle(bundle)["meta"]["features"] == ["mfcc"]
    with zipfile.ZipFile(bundle) as z:  # the largest tensor's bytes inside the zip container
        info = max((i for i in z.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    with open(bundle, "rb") as f:
        f.seek(info.header_offset + 26)
        name_len, extra_len = np.frombuffer(f.read(4), dtype="<u2")
    start = info.header_offset + 30 + int(name_len) + int(extra_len)
    damaged = tmp_path / "damaged.bundle"
    data = bytearray(bundle.read_bytes())
    for k in range(start + 8, start + 8 + 64):
        data[k] ^= 0xFF
    damaged.write_bytes(bytes(data))
    assert torch.load(damaged, weights_only=True)["model"]  # torch itself loads it without a word
    r = _predict(damaged, tmp_path)
    line = one_error_line(r.stderr)
    assert r.exit_code == EXIT_DATA and line.startswith(f"error: {damaged}: damaged model bundle") and "SHA-256" in line


@pytest.mark.parametrize("case,problem", [
    ("empty", "empty file, not a model bundle"),
    ("no_meta", "damaged model bundle: no meta entry"),
    ("no_scalers", "damaged model bundle: no scalers entry"),
    ("bad_json", "its meta entry is not valid JSON"),
    ("meta_not_an_object", "its meta entry lacks"),
    ("scalers_wrong_length", "expected one scaler entry (or None) per language"),
    ("no_checksum", "no checksum entry"),
    ("garbage", "not a readable model bundle"),
])
def test_damaged_bundles_are_refused_naming_the_file(bundle, tmp_path, case, problem):
    from sercore.bundle import payload_digest

    path = tmp_path / f"{case}.bundle"

    def resign(payload):
        payload["sha256"] = payload_digest(payload)

    if case == "empty":
        path.write_bytes(b"")
    elif case == "garbage":
        path.write_bytes(os.urandom(300))
    else:
        def edit(payload):
            if case == "no_meta":
                del payload["meta"]
            elif case == "no_scalers":
                del payload["scalers"]
            elif case == "bad_json":
                payload["meta"] = payload["meta"][:-7]
                resign(payload)
            elif case == "meta_not_an_object":
                payload["meta"] = json.dumps([1, 2])
                resign(payload)
            elif case == "scalers_wrong_length":
                payload["scalers"] = [None, None]
                resign(payload)
            elif case == "no_checksum":
                del payload["sha256"]
        _rewrite(bundle, path, edit)
    with pytest.raises(BundleError) as info:
        read_bundle(path)
    assert str(info.value).startswith(f"{path}: ") and problem in str(info.value)
    r = _predict(path, tmp_path)
    assert r.exit_code == EXIT_DATA and problem in one_error_line(r.stderr)


# --------------------------------------------------------------------------------------------------
# Memory: long utterances cropped, batches bounded, evaluation batched by length


def test_a_very_long_utterance_is_cropped_and_a_too_large_batch_is_refused_naming_it(tmp_path):
    records = _records()
    long = records[5]
    long.features["mfcc"] = np.tile(long.features["mfcc"], (3000, 1))[:60_000]  # 10 minutes at a 10 ms hop
    stores = _write(tmp_path / "features", records)
    out = tmp_path / "long"
    r = run_train(*base_args(stores, out))
    assert r.exit_code == 0, r.output
    from train.dataset import FeatureDataset
    from train.domains import load_domain, resolve_domain
    from train.batch_limits import max_frames

    data = load_domain(resolve_domain("de=synth", stores), stores, ["mfcc", "ge2e"])
    i = data.utt_ids.index(long.utt_id)
    ds = FeatureDataset(data, [i], data.classes, max_frames=max_frames(data.provenance, data.kinds, 60.0))
    assert ds.lengths() == [6000]
    assert torch.equal(ds[0].features["mfcc"], torch.from_numpy(long.features["mfcc"][27_000:33_000]))

    r = run_train(*base_args(stores, tmp_path / "big"), "--per-class", "1000")
    line = one_error_line(r.output)
    split = data.store_splits[i]
    assert r.exit_code == EXIT_DATA and line.startswith(f"error: {store_path(stores, 'synth', split)}: a training batch would need")
    assert "4000 rows (--per-class 1000 x 4 classes)" in line and repr(long.utt_id) in line and "(600 s of mfcc, cropped to 60 s)" in line
    r = run_train(*base_args(stores, tmp_path / "small"), "--max-batch-gb", "0.1")
    assert r.exit_code == EXIT_DATA and repr(long.utt_id) in r.output and "--max-seconds" in r.output
    r = run_train(*base_args(stores, tmp_path / "short"), "--max-batch-gb", "0.1", "--max-seconds", "2")
    assert r.exit_code == 0, r.output


def test_evaluation_batches_by_length_and_reports_in_dataset_order():
    from train.model_io import Example
    from train.network_trainer import length_buckets

    lengths = [50, 3, 400, 3, 60, 1]
    buckets = length_buckets(lengths, 2)
    assert buckets == [[5, 1], [3, 0], [4, 2]]
    assert sorted(i for b in buckets for i in b) == list(range(6))
    assert Example  # the Trainer test below checks the order of its outputs


def test_trainer_evaluation_keeps_dataset_order(tmp_path):
    from train.config import ExperimentConfig
    from train.dataset import FeatureDataset
    from train.domains import load_domain, resolve_domain
    from train.fit_run import domain_info
    from train.models import build_model
    from train.network_trainer import Trainer

    stores = _write(tmp_path / "features", _records())
    data = load_domain(resolve_domain("de=synth", stores), stores, ["mfcc", "ge2e"])
    config = ExperimentConfig(domains=["de=synth"])
    model = build_model("single", config, [domain_info(data, ["mfcc", "ge2e"])])
    trainer = Trainer(model, TrainConfig(progress=False), [data.classes], [0.0])
    ds = FeatureDataset(data, list(range(len(data))), data.classes)
    ev = trainer.evaluate(ds)
    assert ev.utt_ids == ds.utt_ids and ev.labels.tolist() == ds.labels
    model.eval()
    from train.model_io import collate

    with torch.no_grad():
        one = [int(model(collate([ds[k]])).logits.argmax(-1)) for k in range(len(ds))]
    assert ev.predictions.tolist() == one


# --------------------------------------------------------------------------------------------------
# Near-duplicate recordings across splits


def _with_copy(records, source: int, noise: float):
    src = records[source]
    rng = np.random.default_rng(1)
    mfcc = src.features["mfcc"] + noise * rng.normal(size=src.features["mfcc"].shape).astype(np.float32)
    ge2e = src.features["ge2e"] + noise * rng.normal(size=src.features["ge2e"].shape).astype(np.float32)
    copy = UtteranceRecord("zz_reencoded_copy", src.emotion, src.speaker, "de", {"mfcc": mfcc.astype(np.float32), "ge2e": ge2e.astype(np.float32)})
    return records + [copy], src.utt_id


def test_a_near_duplicate_recording_in_another_split_is_refused_with_the_pair_named(tmp_path, caplog):
    records, original = _with_copy(_records(), 3, 0.01)
    splits = ["train"] * len(records)
    splits[-1] = "test"
    splits[1:8] = ["valid"] * 7
    splits[8:15] = ["test"] * 7
    stores = _write(tmp_path / "features", records, splits)
    r = run_train(*base_args(stores, tmp_path / "out"))
    line = one_error_line(r.output)
    assert r.exit_code == EXIT_DATA and "1 pair(s) of near-duplicate utterances" in line
    assert f"'{original}' ~ 'zz_reencoded_copy' (ge2e cosine " in line and "remove one of each pair" in line
    # without the GE2E embedding: pooled features, a warning naming the pair, and training goes on
    with caplog.at_level("WARNING", logger="mgser"):
        r = CliRunner().invoke(main, base_args(stores, tmp_path / "pooled", "--features", "mfcc"))
    assert r.exit_code == 0, r.output
    assert "possibly near-duplicate utterances" in caplog.text and f"'{original}' ~ 'zz_reencoded_copy'" in caplog.text


def test_distinct_recordings_are_not_near_duplicates(tmp_path):
    from train.duplicates import near_duplicates

    records = _records()
    arrays = {n: {r.utt_id: r.features[n] for r in records} for n in ("mfcc", "ge2e")}
    kinds = {"mfcc": "sequence", "ge2e": "embedding"}
    assert near_duplicates([r.utt_id for r in records], arrays, kinds) == []
    with pytest.raises(StoreError, match="near-duplicate"):
        from train.duplicates import refuse_near_duplicates

        both, _ = _with_copy(records, 0, 0.001)
        arrays = {n: {r.utt_id: r.features[n] for r in both} for n in ("mfcc", "ge2e")}
        refuse_near_duplicates(tmp_path, [r.utt_id for r in both], arrays, kinds)


def test_ge2e_evidence_alone_catches_a_copy_whose_pooled_features_moved():
    """A resampled copy whose GE2E cosine is 0.9999 but whose pooled MFCC statistics changed (resampling cut the
    band of its top coefficients) is caught; at a GE2E cosine of 0.996 (different tones of one synthetic voice)
    the pooled features must agree too."""
    from train.duplicates import NEAR_DUPLICATE_GE2E_ALONE, near_duplicates

    rng = np.random.default_rng(0)
    base = rng.normal(size=256)
    ids = ["a", "copy", "c", "d"]
    tangent = rng.normal(size=256)
    tangent -= tangent @ base / (base @ base) * base

    def at_cosine(cos: float) -> np.ndarray:
        t = tangent / np.linalg.norm(tangent) * np.linalg.norm(base)
        return (cos * base + np.sqrt(1 - cos ** 2) * t).astype(np.float32)

    ge2e = {"a": base.astype(np.float32), "copy": at_cosine(0.9999), "c": at_cosine(0.996), "d": -base.astype(np.float32)}
    mfcc = {u: rng.normal(size=(100, 13)).astype(np.float32) * (1 + k) for k, u in enumerate(ids)}  # pooled: unlike
    pairs = near_duplicates(ids, {"ge2e": ge2e, "mfcc": mfcc}, {"ge2e": "embedding", "mfcc": "sequence"})
    assert [(p.first, p.second) for p in pairs] == [("a", "copy")] and pairs[0].cosine >= NEAR_DUPLICATE_GE2E_ALONE

