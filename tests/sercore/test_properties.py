"""Property-based tests (hypothesis): manifest parsers, label normalisation and the audio loader never fail
with anything but the toolkit's own errors, and round trips keep every field."""

from __future__ import annotations

import csv
import io
import tempfile
import unicodedata
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, assume, example, given, settings, strategies as st

from extract.audio import SAMPLE_RATE_RANGE, AudioError, load_audio
from extract.prepare import csvlist
from sercore.errors import DataError
from sercore.labels import ALIASES, EMOTIONS, is_canonical, normalise_label
from sercore.manifest import SPLITS, Utterance, read_manifest, write_manifest

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
# Any Unicode text but lone surrogates (not encodable in UTF-8, so not in any file) and NUL (csv refuses it).
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=20)


@pytest.fixture(scope="module")
def workdir():
    with tempfile.TemporaryDirectory() as d:
        yield Path(d)


# --------------------------------------------------------------------------------------------------
# Labels


def _respell(alias: str, data) -> str:
    """The alias as a corpus might write it: any case, accents in NFC or NFD on some letters, padding."""
    out = []
    for c in alias:
        c = c.upper() if data.draw(st.booleans()) else c
        if c.lower() == "e" and data.draw(st.booleans()):
            c = unicodedata.normalize(data.draw(st.sampled_from(["NFC", "NFD"])), c + "\u0301")
        out.append(c)
    pad = data.draw(st.sampled_from(["", " ", "\t", "  "]))
    return pad + "".join(out) + data.draw(st.sampled_from(["", " ", "\n"]))


@SETTINGS
@given(alias=st.sampled_from(sorted(ALIASES)), data=st.data())
def test_every_spelling_of_a_known_label_normalises_to_it(alias, data):
    assert normalise_label(_respell(alias, data)) == ALIASES[alias]


@SETTINGS
@given(raw=st.text(max_size=30))
def test_any_label_text_normalises_to_a_canonical_label_or_raises_data_error(raw):
    try:
        label = normalise_label(raw, where="x.csv:2")
    except DataError as exc:
        assert str(exc).startswith("x.csv:2: emotion label") and "is not a label name" in str(exc)
        return
    assert is_canonical(label) and normalise_label(label) == label  # idempotent
    assert label == label.strip() and "=" not in label and "," not in label  # safe in --merge and CSV cells


# --------------------------------------------------------------------------------------------------
# Manifests


UTTERANCE = st.builds(Utterance, utt_id=TEXT, path=TEXT, speaker=TEXT, language=TEXT,
                      emotion=st.sampled_from(EMOTIONS + ("calm", "frustrated", "very happy")),
                      split=st.sampled_from(SPLITS))


@SETTINGS
@given(rows=st.lists(UTTERANCE, max_size=8, unique_by=lambda u: u.utt_id))
def test_manifest_write_read_round_trip_keeps_every_field(workdir, rows):
    path = write_manifest(rows, workdir / "m.csv")
    assert read_manifest(path) == rows


@SETTINGS
@given(content=st.text(max_size=300) | st.binary(max_size=300))
def test_reading_any_file_as_a_manifest_gives_rows_or_data_error(workdir, content):
    path = workdir / "any.csv"
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8", "surrogatepass"))
    try:
        rows = read_manifest(path)
    except DataError as exc:
        assert str(exc).startswith(str(path))
        return
    assert all(isinstance(u, Utterance) and is_canonical(u.emotion) for u in rows)


ROW = st.fixed_dictionaries({"label": st.sampled_from(sorted(ALIASES)), "speaker": st.one_of(st.just(""), TEXT),
                             "utt_id": st.one_of(st.just(""), TEXT), "file": st.integers(0, 3)})


@SETTINGS
@given(rows=st.lists(ROW, min_size=1, max_size=6), data=st.data())
def test_csv_preparer_reads_back_what_was_listed(workdir, rows, data):
    for i in range(4):
        f = workdir / "audio" / f"a{i}.wav"
        if not f.exists():
            f.parent.mkdir(parents=True, exist_ok=True)
            sf.write(f, np.zeros(160, np.float32), 16000)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["path", "label", "speaker", "utt_id"])
    for r in rows:
        w.writerow([f"audio/a{r['file']}.wav", _respell(r["label"], data), r["speaker"], r["utt_id"]])
    listing = workdir / "list.csv"
    listing.write_text(buf.getvalue(), encoding="utf-8")
    try:
        scan = csvlist.scan(listing, language="sw")
    except DataError as exc:  # only for a label or field made empty by stripping
        assert str(exc).startswith(str(listing))
        assume(False)
    assert len(scan.recordings) == len(rows)
    for rec, r in zip(scan.recordings, rows):
        assert rec.emotion == ALIASES[r["label"]] and rec.language == "sw"
        assert rec.speaker == (r["speaker"].strip() or "unknown")
        assert rec.utt_id == (r["utt_id"].strip() or f"audio/a{r['file']}")
        assert rec.path == (workdir / "audio" / f"a{r['file']}.wav").resolve()


@SETTINGS
@given(content=st.binary(max_size=400))
@example(content=b"path,label,speaker\naudio/a0.wav,Angry,s1\n")  # a listing that scans, whatever else is drawn
def test_csv_preparer_on_any_bytes_gives_recordings_or_data_error(workdir, content):
    audio = workdir / "audio" / "a0.wav"
    if not audio.exists():
        audio.parent.mkdir(parents=True, exist_ok=True)
        sf.write(audio, np.zeros(160, np.float32), 16000)
    listing = workdir / "junk.csv"
    listing.write_bytes(content)
    try:
        scan = csvlist.scan(listing, language="sw")
    except DataError:
        return
    assert scan.recordings
    for rec in scan.recordings:
        assert rec.language == "sw" and is_canonical(rec.emotion) and rec.speaker and rec.utt_id
        assert rec.path.is_file() and rec.path.is_absolute()


# --------------------------------------------------------------------------------------------------
# Audio loader


@SETTINGS
@given(content=st.binary(max_size=2000), header=st.sampled_from([b"", b"RIFF", b"RIFF\x24\x00\x00\x00WAVEfmt ", b"fLaC", b"OggS"]))
def test_loader_on_random_bytes_raises_only_audio_error(workdir, content, header):
    path = workdir / "random.wav"
    path.write_bytes(header + content)
    try:
        wav, sr = load_audio(path)
    except AudioError as exc:
        assert str(exc).startswith(str(path))
        return
    assert wav.dtype == np.float32 and wav.ndim == 1 and np.isfinite(wav).all()  # decodable after all: valid output
    assert SAMPLE_RATE_RANGE[0] <= sr <= SAMPLE_RATE_RANGE[1]


FORMATS = [("WAV", "PCM_U8"), ("WAV", "PCM_16"), ("WAV", "PCM_24"), ("WAV", "PCM_32"), ("WAV", "FLOAT"), ("WAV", "DOUBLE"),
           ("FLAC", "PCM_16"), ("FLAC", "PCM_24")]


@SETTINGS
@given(fmt=st.sampled_from(FORMATS), sr=st.sampled_from([8000, 11025, 16000, 22050, 44100, 48000, 96000]),
       channels=st.integers(1, 8), frames=st.integers(0, 3000), data=st.data())
def test_loader_on_random_valid_pcm_returns_mono_float_or_audio_error(workdir, fmt, sr, channels, frames, data):
    container, subtype = fmt
    floats = st.floats(-1.0, 1.0, width=32)
    if subtype in ("FLOAT", "DOUBLE"):
        floats = floats | st.sampled_from([np.nan, np.inf, -np.inf, 4.0])
    seed = data.draw(st.integers(0, 2**32 - 1))
    samples = np.random.default_rng(seed).uniform(-1, 1, (frames, channels)).astype(np.float32)
    samples *= data.draw(st.sampled_from([0.0, 1e-6, 0.5, 1.0]))
    if frames:
        samples[data.draw(st.integers(0, frames - 1)), data.draw(st.integers(0, channels - 1))] = data.draw(floats)
    path = workdir / f"pcm.{container.lower()}"
    sf.write(path, samples, sr, format=container, subtype=subtype)
    try:
        wav, got_sr = load_audio(path)
    except AudioError as exc:
        assert str(exc).startswith(str(path))
        return
    assert got_sr == sr and wav.shape == (frames,) and wav.dtype == np.float32
    assert np.isfinite(wav).all() and np.abs(wav).max() >= 2.0 ** -15
