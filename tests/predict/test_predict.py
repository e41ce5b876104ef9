"""`predict` end to end: real MFCC + GE2E extraction of tiny synthetic audio, a model trained 1 epoch on it."""

import csv
import json
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner

from extract.pipeline import extract_dataset
from predict.bundle import load_bundle
from predict.cli import main as predict_main
from sercore.bundle import payload_digest
from sercore.manifest import Utterance, write_manifest
from train.calibration import apply_temperature
from train.cli import main as train_main

EMOTIONS = ("angry", "sad", "neutral")
SR = 16000


def _clip(emotion: int, i: int, seconds: float = 0.6) -> np.ndarray:
    """A voiced-like harmonic tone whose pitch and vibrato depend on the emotion; its timbre (harmonic amplitudes)
    and syllable rate on i, so that no two clips are the same recording to the near-duplicate guard."""
    t = np.arange(int(seconds * SR)) / SR
    f0 = (110, 190, 300)[emotion] * (1 + 0.02 * i)
    vib = 1 + 0.1 * np.sin(2 * np.pi * (2 + 3 * emotion) * t)
    amps = np.random.default_rng(100 * emotion + i).uniform(0.05, 1.0, 8)
    syllables = 0.6 + 0.4 * np.sin(2 * np.pi * (2 + i) * t)
    wav = syllables * sum(amps[k - 1] * np.sin(2 * np.pi * k * f0 * t * vib) / k for k in range(1, 9))
    return (0.2 * wav * np.hanning(len(t)) ** 0.2).astype(np.float32)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(bundle path, a WAV file, its FLAC / stereo / 48 kHz copy, the root folder)."""
    root = tmp_path_factory.mktemp("predict")
    rows = []
    for e, emo in enumerate(EMOTIONS):
        for i in range(6):
            path = root / "wav" / f"{emo}_{i}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, _clip(e, i), SR)
            rows.append(Utterance(f"{emo}_{i}", str(path), f"s{i % 2}", "de", emo, ("train", "valid", "test")[i % 3]))
    write_manifest(rows, root / "manifests" / "tones.csv")
    extract_dataset("tones", ["mfcc", "ge2e"], manifest_dir=root / "manifests", features_dir=root / "features", workers=0,
                    progress=False, echo=lambda s: None)
    r = CliRunner().invoke(train_main, ["--domains", "de=tones", "--features", "mfcc,ge2e", "--features-dir",
                                        str(root / "features"), "--epochs", "1", "--seeds", "1", "--standardize",
                                        "--per-class", "4", "--out", str(root / "run"), "--quiet"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    wav = root / "new" / "clip.wav"
    wav.parent.mkdir()
    signal = _clip(1, 7, seconds=0.8)
    sf.write(wav, signal, SR)
    up = librosa.resample(signal, orig_sr=SR, target_sr=48000)
    flac = root / "new" / "deeper" / "clip_48k_stereo.flac"
    flac.parent.mkdir()
    sf.write(flac, np.stack([up, up], axis=1), 48000, subtype="PCM_24")
    return root / "run" / "model.bundle", wav, flac, root


def _predict(*args):
    return CliRunner().invoke(predict_main, [*args, "--quiet"], catch_exceptions=False)


def test_same_answer_for_wav_and_flac_stereo_48k_of_the_same_audio(trained):
    bundle, wav, flac, _ = trained
    r = _predict("--model", str(bundle), "--language", "de", str(wav), str(flac), "--jsonl")
    assert r.exit_code == 0, r.output
    lines = [json.loads(s) for s in r.stdout.splitlines() if s.startswith("{")]
    assert [line["path"] for line in lines] == [str(wav), str(flac)]
    a, b = lines
    assert set(a["probabilities"]) == set(EMOTIONS) and a["language"] == "de"
    assert sum(a["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert a["emotion"] == max(a["probabilities"], key=a["probabilities"].get)
    assert a["emotion"] == b["emotion"]
    diff = max(abs(a["probabilities"][c] - b["probabilities"][c]) for c in EMOTIONS)
    assert diff < 1e-3, diff  # resampling 16 -> 48 -> 16 kHz and 24-bit FLAC change the features only slightly


def test_directories_csv_output_and_bad_files(trained, tmp_path):
    bundle, wav, flac, root = trained
    bad = root / "new" / "broken.wav"
    bad.write_bytes(b"RIFF....WAVEfmt garbage")
    out = tmp_path / "results.csv"
    r = _predict("--model", str(bundle.parent), str(root / "new"), "--output", str(out))  # run folder, one language
    assert r.exit_code == 0, r.output  # some files predicted, not --strict
    assert f"skipped {bad}" in r.stderr and "1 skipped" in r.stderr
    rows = list(csv.DictReader(out.open()))
    assert sorted(row["path"] for row in rows) == sorted([str(wav), str(flac)])  # found recursively, bad one left out
    assert list(rows[0]) == ["path", "language", "emotion", "p_neutral", "p_angry", "p_sad"]
    text = [s for s in r.stdout.splitlines() if s.startswith(str(wav))]
    assert len(text) == 1 and text[0].split("\t")[1] in EMOTIONS
    assert _predict("--model", str(bundle), str(root / "new"), "--strict").exit_code == 5  # some inputs failed
    assert _predict("--model", str(bundle), str(bad)).exit_code == 5  # nothing could be predicted
    r = _predict("--model", str(bundle), "--language", "fr", str(wav))
    assert r.exit_code == 2 and "no language 'fr'" in r.stderr


def _tampered(bundle_path, out_path, feature, **attrs):
    payload = torch.load(bundle_path, weights_only=True)
    meta = json.loads(payload["meta"])
    meta["domains"][0]["provenance"][feature].update(attrs)
    payload["meta"] = json.dumps(meta)
    payload["sha256"] = payload_digest(payload)  # re-signed: this tests the provenance check, not the checksum
    torch.save(payload, out_path)
    return out_path


def test_refuses_a_model_trained_on_features_from_other_weights(trained, tmp_path):
    bundle, wav, _, _ = trained
    here = json.loads(torch.load(bundle, weights_only=True)["meta"])["domains"][0]["provenance"]["ge2e"]["checkpoint_sha256"]
    assert len(here) == 64  # the real resemblyzer checkpoint hash was recorded at extraction
    other = "ab" * 32
    r = _predict("--model", str(_tampered(bundle, tmp_path / "other.bundle", "ge2e", checkpoint_sha256=other)), str(wav))
    assert r.exit_code == 3 and not r.stdout
    assert "feature 'ge2e'" in r.stderr and other in r.stderr and here in r.stderr
    r = _predict("--model", str(_tampered(bundle, tmp_path / "mfcc.bundle", "mfcc", n_mfcc=13)), str(wav))
    assert r.exit_code == 3 and "feature 'mfcc'" in r.stderr and "n_mfcc: trained 13, here 40" in r.stderr
    r = _predict("--model", str(_tampered(bundle, tmp_path / "own.bundle", "mfcc", extractor="my_mfcc")), str(wav))
    assert r.exit_code == 3 and "extractor 'my_mfcc', which this toolkit does not have" in r.stderr
    # a moved checkpoint (other path, same hash) is not a mismatch
    r = _predict("--model", str(_tampered(bundle, tmp_path / "moved.bundle", "ge2e", checkpoint="/elsewhere/x.pt")), str(wav))
    assert r.exit_code == 0, r.stderr


def test_a_head_trained_with_speaker_norm_predicts_what_its_run_recorded_given_each_files_speaker(trained, tmp_path):
    """train --model logreg --speaker-norm, then predict every file with its speaker (--speakers): each speaker's
    files are standardised together as in training, so the test files get the run's recorded probabilities."""
    import mgser
    from sercore.bundle import BundleError

    _, _, _, root = trained
    out = tmp_path / "spk"
    r = CliRunner().invoke(train_main, ["--domains", "de=tones", "--features", "mfcc,ge2e", "--features-dir",
                                        str(root / "features"), "--model", "logreg", "--speaker-norm", "--seeds", "1",
                                        "--out", str(out), "--quiet"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    record = json.loads((out / "runs" / "run0.json").read_text())
    files = sorted((root / "wav").glob("*.wav"))  # 18 files, speakers s0 and s1 (9 each)
    speakers = root / "wav" / "speakers.csv"  # paths relative to the CSV's folder
    speakers.write_text("path,speaker\n" + "".join(f"{f.name},s{int(f.stem.split('_')[1]) % 2}\n" for f in files))
    r = _predict("--model", str(out), *map(str, files), "--speakers", str(speakers), "--jsonl")
    assert r.exit_code == 0, r.output
    got = {json.loads(s)["path"]: json.loads(s)["probabilities"] for s in r.stdout.splitlines()}
    test = record["test"]
    classes = json.loads(torch.load(out / "model.bundle", weights_only=True)["meta"])["domains"][0]["classes"]
    for utt, p in zip(test["utt_ids"], test["probabilities"]):
        assert np.allclose([got[str(root / "wav" / f"{utt}.wav")][c] for c in classes], p, atol=1e-4), utt
    # without the speakers: a usage error before any audio is read; speakers with too few files: those files skipped
    r = _predict("--model", str(out), *map(str, files))
    assert r.exit_code == 2 and "--speaker-norm" in r.stderr and not r.stdout
    r = _predict("--model", str(out), *map(str, files[:7]), "--speaker", "someone", "--jsonl")
    assert r.exit_code == 0 and len(r.stdout.splitlines()) == 7
    r = _predict("--model", str(out), *map(str, files[:4]), "--speaker", "someone", "--jsonl")
    assert r.exit_code == 5 and "needs at least 5" in r.stderr
    # a file named twice counts once in its speaker's statistics: 4 distinct files are still too few
    r = _predict("--model", str(out), *map(str, files[:4]), str(files[0]), "--speaker", "someone", "--jsonl")
    assert r.exit_code == 5 and "has 4 file(s)" in r.stderr
    r = _predict("--model", str(out), str(files[0]), "--speaker", " ")
    assert r.exit_code == 2 and "--speaker" in r.stderr and "empty" in r.stderr
    r = _predict("--model", str(out), str(files[0]), "--speakers", str(tmp_path / "nothing.csv"))
    assert r.exit_code == 2 and "nothing.csv" in r.stderr
    (tmp_path / "bad.csv").write_text("file,who\nx.wav,a\n")
    r = _predict("--model", str(out), str(files[0]), "--speakers", str(tmp_path / "bad.csv"))
    errors = r.stderr.strip().splitlines()
    assert r.exit_code == 3 and len(errors) == 1 and "bad.csv" in errors[0] and "path and speaker" in errors[0]
    (tmp_path / "twice.csv").write_text(f"path,speaker\n{files[0]},a\n{files[0]},b\n")
    r = _predict("--model", str(out), str(files[0]), "--speakers", str(tmp_path / "twice.csv"))
    errors = r.stderr.strip().splitlines()
    assert r.exit_code == 3 and len(errors) == 1 and "twice.csv" in errors[0] and "row 2 of the table" in errors[0], errors
    with pytest.raises(BundleError, match="--speaker-norm"):
        mgser.load_model(out)


def test_the_transfer_ensemble_with_speaker_norm_predicts_what_its_run_recorded_given_each_files_speaker(trained, tmp_path):
    """train --transfer-to de --speaker-norm (the network on de's utterances and the head standardised per speaker,
    a second tone corpus as the source language), then predict with --speakers: de's test files get the run's
    recorded probabilities."""
    _, _, _, root = trained
    rows = []
    for e, emo in enumerate(EMOTIONS):  # the source: other tones of the same emotions, another language code
        for i in range(6):
            path = tmp_path / "wav_it" / f"{emo}_{i}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, _clip(e, i + 20), SR)
            rows.append(Utterance(f"it_{emo}_{i}", str(path), f"t{i % 2}", "it", emo, ("train", "valid", "test")[i % 3]))
    features = tmp_path / "features"
    features.mkdir()
    (features / "tones").symlink_to(root / "features" / "tones", target_is_directory=True)
    write_manifest(rows, tmp_path / "manifests" / "tones_it.csv")
    extract_dataset("tones_it", ["mfcc", "ge2e"], manifest_dir=tmp_path / "manifests", features_dir=features, workers=0,
                    progress=False, echo=lambda s: None)
    out = tmp_path / "transfer"
    r = CliRunner().invoke(train_main, ["--domains", "it=tones_it,de=tones", "--transfer-to", "de", "--speaker-norm",
                                        "--features", "mfcc,ge2e", "--features-dir", str(features), "--epochs", "1",
                                        "--per-class", "4", "--seeds", "1", "--out", str(out), "--quiet"],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    record = json.loads((out / "runs" / "run0.json").read_text())
    assert record["history"][0]["ensemble"]["members"]["single"]["weight"] == 0.5
    files = sorted((root / "wav").glob("*.wav"))
    speakers = tmp_path / "speakers.csv"
    speakers.write_text("path,speaker\n" + "".join(f"{f},s{int(f.stem.split('_')[1]) % 2}\n" for f in files))
    r = _predict("--model", str(out), *map(str, files), "--speakers", str(speakers), "--jsonl")
    assert r.exit_code == 0, r.output
    got = {json.loads(s)["path"]: json.loads(s)["probabilities"] for s in r.stdout.splitlines()}
    bundle = load_bundle(out)
    classes, temperature = bundle.classes("de"), bundle.temperature("de")  # calibrated on de's validation split
    test = record["test"]
    assert len(test["utt_ids"]) == 6
    for utt, p in zip(test["utt_ids"], test["probabilities"]):
        expected = apply_temperature(np.log(np.asarray(p, dtype=np.float64))[None], temperature)[0]
        assert np.allclose([got[str(root / "wav" / f"{utt}.wav")][c] for c in classes], expected, atol=1e-5), utt
    r = _predict("--model", str(out), *map(str, files))  # without the speakers: refused, as for a head
    assert r.exit_code == 2 and "--speaker-norm" in r.stderr and not r.stdout


def test_refuses_a_network_trained_with_per_speaker_standardisation(trained, tmp_path):
    bundle, wav, _, _ = trained
    payload = torch.load(bundle, weights_only=True)
    meta = json.loads(payload["meta"])
    meta["config"]["train"]["speaker_norm"] = True
    payload["meta"] = json.dumps(meta)
    payload["sha256"] = payload_digest(payload)
    torch.save(payload, tmp_path / "spk.bundle")
    r = _predict("--model", str(tmp_path / "spk.bundle"), str(wav))
    assert r.exit_code == 3 and not r.stdout and "--speaker-norm" in r.stderr


def test_output_never_replaces_an_input_nor_a_foreign_file(trained, tmp_path):
    bundle, wav, _, _ = trained
    audio = wav.read_bytes()
    r = _predict("--model", str(bundle), "--output", str(wav), str(wav))
    assert r.exit_code == 2 and "--output" in r.stderr and "one of the input files" in r.stderr, r.output
    assert wav.read_bytes() == audio
    r = _predict("--model", str(bundle), "--output", str(wav), "--overwrite", str(wav.parent))  # found in a folder
    assert r.exit_code == 2 and wav.read_bytes() == audio
    notes = tmp_path / "notes.csv"
    notes.write_text("my,own\n1,2\n")
    r = _predict("--model", str(bundle), "--output", str(notes), str(wav))
    assert r.exit_code == 2 and f"{notes} exists and is not a results file" in r.stderr
    assert notes.read_text() == "my,own\n1,2\n"
    assert _predict("--model", str(bundle), "--output", str(notes), "--overwrite", str(wav)).exit_code == 0
    assert notes.read_text().startswith("path,language,emotion,p_")
    assert _predict("--model", str(bundle), "--output", str(notes), str(wav)).exit_code == 0  # a results file: replaced


def test_output_on_a_full_disk_names_the_file_and_keeps_the_old_one(trained, tmp_path, monkeypatch):
    import errno

    import pandas as pd

    bundle, wav, _, _ = trained
    out = tmp_path / "pred.csv"
    assert _predict("--model", str(bundle), "--output", str(out), str(wav)).exit_code == 0
    before = out.read_text()

    def full_disk(frame, path, **options):  # the results CSV goes through sercore.tables.write_csv
        Path(path).write_text("path,language,emo")  # half a file, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", full_disk)
    r = _predict("--model", str(bundle), "--output", str(out), str(wav))
    assert r.exit_code == 4 and r.stderr.strip().splitlines()[-1] == f"error: {out}: no space left on device", r.output
    assert out.read_text() == before and sorted(p.name for p in tmp_path.iterdir()) == ["pred.csv"]


def _with_meta(bundle_path, out_path, change):
    payload = torch.load(bundle_path, weights_only=True)
    meta = json.loads(payload["meta"])
    change(meta)
    payload["meta"] = json.dumps(meta)
    payload["sha256"] = payload_digest(payload)
    torch.save(payload, out_path)
    return out_path


def _probabilities(r):
    return [json.loads(s)["probabilities"] for s in r.stdout.splitlines() if s.startswith("{")]


def test_probabilities_are_calibrated_with_the_bundles_temperature(trained, tmp_path):
    bundle, wav, flac, _ = trained
    meta = json.loads(torch.load(bundle, weights_only=True)["meta"])
    c = meta["calibration"][0]  # fitted on the selected run's validation split
    record = json.loads((bundle.parent / "runs" / f"run{meta['selected_run']['run']}.json").read_text())
    assert c["method"] == "temperature" and c["temperature"] > 0 and c["n_valid"] == len(record["valid"]["utt_ids"])
    assert {"valid_ece_before", "valid_ece_after", "test_ece_before", "test_ece_after"} <= set(c)
    assert c["valid_ece_after"] <= c["valid_ece_before"] + 1e-9
    t = c["temperature"]
    from predict.bundle import describe

    assert f"calibration: temperature {t:.3g} fitted on {c['n_valid']} validation utterances" in describe(bundle)

    def with_temperature(value):
        def change(m):
            m["calibration"][0]["temperature"] = value
        return _with_meta(bundle, tmp_path / f"t{value}.bundle", change)

    base = _probabilities(_predict("--model", str(bundle), str(wav), str(flac), "--jsonl"))
    for other in (2 * t, t / 3):
        got = _probabilities(_predict("--model", str(with_temperature(other)), str(wav), str(flac), "--jsonl"))
        for p, q in zip(base, got):  # log p = logits / t + const, so softmax(logits / other) = softmax(log p * t / other)
            z = np.log([p[e] for e in EMOTIONS]) * t / other
            expected = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
            assert np.allclose([q[e] for e in EMOTIONS], expected, atol=2e-5)
    # a bundle written before calibration: the model's own softmax
    old = _with_meta(bundle, tmp_path / "old.bundle", lambda m: m.pop("calibration"))
    got = _probabilities(_predict("--model", str(old), str(wav), "--jsonl"))
    z = np.log([base[0][e] for e in EMOTIONS]) * t
    assert np.allclose([got[0][e] for e in EMOTIONS], np.exp(z - z.max()) / np.exp(z - z.max()).sum(), atol=2e-5)


def test_min_confidence_answers_uncertain_below_it(trained, tmp_path):
    bundle, wav, flac, _ = trained
    base = _predict("--model", str(bundle), str(wav), str(flac), "--jsonl")
    lines = [json.loads(s) for s in base.stdout.splitlines() if s.startswith("{")]
    top = [max(line["probabilities"].values()) for line in lines]
    cut = (min(top) + max(top)) / 2 if max(top) - min(top) > 1e-6 else max(top) + 1e-6
    out = tmp_path / "r.csv"
    r = _predict("--model", str(bundle), str(wav), str(flac), "--jsonl", "--min-confidence", str(cut), "--output", str(out))
    assert r.exit_code == 0, r.output
    got = [json.loads(s) for s in r.stdout.splitlines() if s.startswith("{")]
    for line, before, p in zip(got, lines, top):
        assert line["emotion"] == ("uncertain" if p < cut else before["emotion"])
        assert line["probabilities"] == before["probabilities"]
    assert "uncertain" in [g["emotion"] for g in got]
    assert [row["emotion"] for row in csv.DictReader(out.open())] == [g["emotion"] for g in got]
    for bad in ("1.5", "nan", "-0.1"):
        r = _predict("--model", str(bundle), str(wav), "--min-confidence", bad)
        assert r.exit_code == 2 and "--min-confidence" in r.stderr


class _RecordedBundle:
    """What extractor_settings reads of a bundle: the inputs and their recorded provenance."""

    def __init__(self, provenance: dict):
        self.inputs, self._provenance = list(provenance), provenance

    def provenance(self, language):
        return self._provenance


def test_the_wav2vec_layer_defaults_to_the_one_the_model_was_trained_on(monkeypatch):
    from predict.cli import extractor_settings

    monkeypatch.delenv("MGSER_CONFIG", raising=False)
    recorded = _RecordedBundle({"wav2vec": {"extractor": "wav2vec", "layer": 7}, "mfcc": {"extractor": "mfcc"}})
    assert extractor_settings(recorded, "de").get("wav2vec_layer") == 7
    assert extractor_settings(recorded, "de", wav2vec_layer=3).get("wav2vec_layer") == 3  # an explicit layer wins
    for layer in (-1, None, ""):  # the whole output (wav2vec 1.0), or not recorded
        assert extractor_settings(_RecordedBundle({"wav2vec": {"layer": layer}}), "de").get("wav2vec_layer") is None
    settings = extractor_settings(recorded, "de", "cpu", (), byol_checkpoint="b.pth")  # the registry's setting keys
    assert str(settings.get("byol_checkpoint")) == "b.pth"
    with pytest.raises(TypeError, match="byol_weights"):
        extractor_settings(recorded, "de", byol_weights="b.pth")
