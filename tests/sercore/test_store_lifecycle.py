"""Stores that follow their audio and manifest (issue 18, sections 2, 3 and 5, extract side): fingerprints,
removal of utterances gone from the manifest, one consistent generation per dataset, no rewrite when nothing
changed, the per-dataset lock, a full disk, long utterances named, and one-line option errors."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

import sercore.store as store_module
from extract.cli import main as extract_main
from extract.pipeline import extract_dataset
from sercore.errors import EnvironmentProblem, StoreError
from sercore.manifest import write_manifest
from sercore.store import FeatureStore, generation_path, open_dataset, store_path
from tests._same_features import assert_same_features
from tests.extract.test_extract_pipeline import _tone, make_corpus

SPLITS = ("train", "valid", "test")


def _extract(manifest_dir, fdir, **kw):
    return extract_dataset("corpus", ["mfcc"], manifest_dir=manifest_dir, features_dir=fdir, workers=0,
                           progress=False, echo=kw.pop("echo", lambda s: None), **kw)


def _stored(fdir) -> dict[str, tuple[str, np.ndarray]]:
    out = {}
    for split in SPLITS:
        with FeatureStore(store_path(fdir, "corpus", split)) as s:
            for u, emo, a in zip(s.utt_ids, s.emotions, s.read("mfcc")):
                out[u] = (emo, a)
    return out


def _files(fdir: Path) -> dict[str, tuple[int, int, int]]:
    """Every file below fdir: (inode, mtime_ns, size), the lock file aside (it records the holder's PID)."""
    return {str(p.relative_to(fdir)): (p.stat().st_ino, p.stat().st_mtime_ns, p.stat().st_size)
            for p in fdir.rglob("*") if p.is_file() and p.name != ".extract.lock"}


@pytest.fixture
def corpus(tmp_path):
    manifest_dir, rows = make_corpus(tmp_path, n=12)
    fdir = tmp_path / "features"
    _extract(manifest_dir, fdir)
    return manifest_dir, rows, fdir


def test_replaced_audio_is_recomputed_and_touched_audio_is_not(corpus, tmp_path):
    manifest_dir, rows, fdir = corpus
    before = _stored(fdir)
    # a re-download: new audio under the same names (other tone, other length)
    for k, u in enumerate(rows[:3]):
        sf.write(u.path, _tone(0.7, 400 + 50 * k), 16000)
    # a copy that keeps the bytes but not the modification time
    os.utime(rows[5].path, ns=(time.time_ns(), time.time_ns() + 10**9))
    summary = _extract(manifest_dir, fdir)
    assert sorted(summary.changed) == [u.utt_id for u in rows[:3]]
    assert all("audio file changed" in why for why in summary.changed.values())
    assert summary.computed == 3 and summary.already_done == len(rows) - 3
    after = _stored(fdir)
    fresh = tmp_path / "fresh"
    _extract(manifest_dir, fresh)  # the same audio from scratch, in this process: bit-identical
    for u, (emo, a) in _stored(fresh).items():
        assert_same_features(after[u][1], a, same_process=True)
    assert after[rows[0].utt_id][1].shape != before[rows[0].utt_id][1].shape
    assert_same_features(after[rows[5].utt_id][1], before[rows[5].utt_id][1], same_process=True)


def test_an_edited_manifest_is_refused_by_train_until_extract_updates_the_stores(corpus):
    manifest_dir, rows, fdir = corpus
    edited = list(rows)
    relabelled = edited[0] = edited[0].__class__(**{**edited[0].__dict__, "emotion": "happy"})
    removed = edited.pop(4)
    write_manifest(edited, manifest_dir / "corpus.csv")
    with pytest.raises(StoreError) as err:
        open_dataset(fdir, "corpus")
    msg = str(err.value)
    assert f"{relabelled.utt_id} (emotion 'angry' -> 'happy')" in msg
    assert f"{removed.utt_id} (not in the manifest)" in msg
    assert f"extract --dataset corpus --features-dir {fdir} --manifest-dir {manifest_dir}" in msg
    summary = _extract(manifest_dir, fdir)
    assert summary.removed == 1 and list(summary.changed) == [relabelled.utt_id]
    stores = open_dataset(fdir, "corpus")  # now current
    for st in stores.values():
        st.close()
    stored = _stored(fdir)
    assert removed.utt_id not in stored and stored[relabelled.utt_id][0] == "happy"


def test_a_path_change_in_the_manifest_is_seen(corpus, tmp_path):
    manifest_dir, rows, fdir = corpus
    moved = tmp_path / "elsewhere.wav"
    shutil.copy(rows[2].path, moved)
    edited = [u.__class__(**{**u.__dict__, "path": str(moved)}) if u is rows[2] else u for u in rows]
    write_manifest(edited, manifest_dir / "corpus.csv")
    with pytest.raises(StoreError, match=rf"{rows[2].utt_id} \(path changed in the manifest\)"):
        open_dataset(fdir, "corpus")
    assert list(_extract(manifest_dir, fdir).changed) == [rows[2].utt_id]


def test_train_refuses_a_stale_store_naming_the_utterance(corpus):
    from train.cli import main as train_main

    manifest_dir, rows, fdir = corpus
    write_manifest(rows[:-1], manifest_dir / "corpus.csv")
    r = CliRunner().invoke(train_main, ["--domains", "xx=corpus", "--features", "mfcc", "--features-dir", str(fdir),
                                        "--epochs", "1", "--seeds", "1", "--quiet", "--out", str(fdir.parent / "out")])
    assert r.exit_code == 3 and f"{rows[-1].utt_id} (not in the manifest)" in r.output  # data error
    assert "extract --dataset corpus" in r.output


def test_a_missing_split_store_is_refused(corpus):
    manifest_dir, rows, fdir = corpus
    store_path(fdir, "corpus", "valid").unlink()
    with pytest.raises(StoreError, match=r"valid\.h5: missing: the valid store of 'corpus' is gone"):
        open_dataset(fdir, "corpus")


def test_a_split_store_deleted_with_the_generation_record_is_refused_until_extract_recreates_both(corpus):
    manifest_dir, rows, fdir = corpus
    store_path(fdir, "corpus", "valid").unlink()
    generation_path(fdir, "corpus").unlink()
    with pytest.raises(StoreError, match=r"stores\.json: missing: .*found train\.h5, test\.h5, no valid\.h5.*extract --dataset corpus"):
        open_dataset(fdir, "corpus")
    _extract(manifest_dir, fdir)  # recomputes the valid split and records the generation again
    opened = open_dataset(fdir, "corpus")
    assert sorted(opened) == ["test", "train", "valid"]
    assert sum(len(st.utt_ids) for st in opened.values()) == len(rows)
    for st in opened.values():
        st.close()


def test_readers_never_mix_two_generations(corpus, tmp_path):
    """A store replaced but not yet recorded in stores.json (an extract committing, or killed while committing)
    is refused after the wait; once the generation is committed the set opens."""
    manifest_dir, rows, fdir = corpus
    record = generation_path(fdir, "corpus").read_text()
    other = tmp_path / "other"
    _extract(manifest_dir, other)  # the same data, another generation (other store ids)
    shutil.copy(store_path(other, "corpus", "train"), store_path(fdir, "corpus", "train"))
    assert generation_path(fdir, "corpus").read_text() == record
    with pytest.raises(StoreError, match=r"train\.h5: not the store of the current generation"):
        open_dataset(fdir, "corpus", wait_seconds=0)
    _extract(manifest_dir, fdir)  # completes the set: records the generation, computes nothing
    for st in open_dataset(fdir, "corpus", wait_seconds=0).values():
        st.close()


def test_overwrite_keeps_the_old_stores_readable_until_the_new_set_is_committed(corpus, monkeypatch):
    manifest_dir, rows, fdir = corpus
    ids_before = {s: FeatureStore(store_path(fdir, "corpus", s)).store_id for s in SPLITS}
    seen = []
    real = store_module.consolidate

    def spy(*args, **kwargs):  # at each split's commit, a reader opens one complete generation
        stores = open_dataset(fdir, "corpus", wait_seconds=0) if not seen else None
        seen.append(stores)
        return real(*args, **kwargs)

    import extract.pipeline as pipeline
    monkeypatch.setattr(pipeline, "consolidate", spy)
    _extract(manifest_dir, fdir, overwrite=True)
    assert {s: st.store_id for s, st in seen[0].items()} == ids_before
    ids_after = {s: st.store_id for s, st in open_dataset(fdir, "corpus").items()}
    assert set(ids_after.values()).isdisjoint(ids_before.values())


def test_a_rerun_with_nothing_to_do_writes_nothing(corpus, monkeypatch):
    manifest_dir, rows, fdir = corpus
    before = _files(fdir)

    def no_write(path, *a, **k):
        raise AssertionError(f"rerun wrote {path}")

    import sercore.fsio
    monkeypatch.setattr(store_module, "write_atomic", no_write)
    monkeypatch.setattr(sercore.fsio, "write_atomic", no_write)
    summary = _extract(manifest_dir, fdir)
    assert summary.computed == 0 and summary.already_done == len(rows)
    assert _files(fdir) == before  # same inodes, times and sizes: no store, part or record rewritten


def test_a_rerun_with_nothing_to_do_works_on_a_read_only_folder(corpus, monkeypatch):
    """Read-only media: opening the lock file for writing fails with EROFS (simulated: the suite may run as root,
    which ignores file modes). Nothing to do: the run succeeds; something to do: one line, EnvironmentProblem."""
    manifest_dir, rows, fdir = corpus
    real_open = os.open

    def read_only(path, flags, *a):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *a)

    import sercore.fsio
    monkeypatch.setattr(sercore.fsio.os, "open", read_only)
    assert _extract(manifest_dir, fdir).already_done == len(rows)
    sf.write(rows[0].path, _tone(0.9, 700), 16000)
    with pytest.raises(EnvironmentProblem, match="not writable .* 1 utterance"):
        _extract(manifest_dir, fdir)


def test_a_second_extract_on_the_same_dataset_is_refused_naming_the_holder(corpus):
    manifest_dir, rows, fdir = corpus
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from sercore.fsio import FolderLock; "
                               "FolderLock(sys.argv[1], '.extract.lock', 'extract').acquire(); print('held', flush=True); "
                               "time.sleep(60)", str(fdir / "corpus")],
                              stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    try:
        assert holder.stdout.readline().strip() == b"held"
        r = CliRunner().invoke(extract_main, ["--dataset", "corpus", "--features", "mfcc", "--workers", "0", "--quiet",
                                              "--manifest-dir", str(manifest_dir), "--features-dir", str(fdir)])
        assert r.exit_code == 4, r.output
        assert r.output.strip().splitlines()[-1] == (
            f"error: {fdir / 'corpus'}: another `extract` is writing here (PID {holder.pid}, lock "
            f"{fdir / 'corpus' / '.extract.lock'}); wait for it to finish or stop it, then run this again")
    finally:
        holder.kill()
        holder.wait()
    assert _extract(manifest_dir, fdir).already_done == len(rows)  # the lock died with its holder


def test_disk_full_is_one_line_keeps_what_was_committed_and_a_rerun_completes(tmp_path, monkeypatch):
    """ENOSPC simulated on the 3rd part file (writing bytes fails as the kernel would); a real full tmpfs is in
    test_disk_full_on_a_real_small_tmpfs."""
    manifest_dir, rows = make_corpus(tmp_path, n=12)
    fdir = tmp_path / "features"
    calls = []
    real = Path.write_bytes

    def full(self, data):
        calls.append(self)
        if len(calls) >= 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", full)
    r = CliRunner().invoke(extract_main, ["--dataset", "corpus", "--features", "mfcc", "--workers", "0", "--quiet",
                                          "--batch-size", "2", "--manifest-dir", str(manifest_dir), "--features-dir", str(fdir)])
    assert r.exit_code == 4
    last = r.output.strip().splitlines()[-1]
    assert last.startswith(f"error: {fdir}") and "no space left on device" in last and ".parts/part-" in last
    committed = sorted(fdir.rglob("*.h5"))
    assert len(committed) == 2 and not list(fdir.rglob("*.tmp"))
    for p in committed:
        FeatureStore(p).close()
    monkeypatch.undo()
    summary = _extract(manifest_dir, fdir)
    assert summary.already_done == 4 and summary.computed == len(rows) - 4  # the two committed parts are kept
    assert sorted(_stored(fdir)) == sorted(u.utt_id for u in rows)


@pytest.mark.slow
def test_disk_full_on_a_real_small_tmpfs(tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(mnt)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs needs root")
    try:
        manifest_dir, rows = make_corpus(tmp_path, n=30)
        cmd = [sys.executable, "-m", "extract.cli", "--dataset", "corpus", "--features", "mfcc", "--workers", "0",
               "--quiet", "--batch-size", "4", "--manifest-dir", str(manifest_dir), "--features-dir", str(mnt / "f")]
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
        assert r.returncode == 4, r.stderr[-2000:]
        assert r.stderr.strip().splitlines() == [r.stderr.strip().splitlines()[0]] and "no space left" in r.stderr
        subprocess.run(["mount", "-o", "remount,size=20m", str(mnt)], check=True)
        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
        assert r.returncode == 0, r.stderr[-2000:]
        assert sorted(_stored(mnt / "f")) == sorted(u.utt_id for u in rows)
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


def test_the_summary_names_an_utterance_far_longer_than_the_rest(tmp_path):
    manifest_dir, rows = make_corpus(tmp_path, n=9)
    sf.write(rows[3].path, _tone(12.0, 200), 16000)  # the others are 0.5-0.9 s
    lines = []
    summary = _extract(manifest_dir, tmp_path / "f", echo=lines.append)
    assert list(summary.long) == [rows[3].utt_id] and summary.long[rows[3].utt_id] == pytest.approx(12.0, abs=0.01)
    assert any(f"{rows[3].utt_id} (12.0 s)" in line and "longer than the median" in line for line in lines)


@pytest.mark.parametrize("option,value", [("--workers", "-1"), ("--batch-size", "0"), ("--batch-size", "-1")])
def test_out_of_range_options_are_one_line_usage_errors(tmp_path, option, value):
    manifest_dir, rows = make_corpus(tmp_path, n=3)
    r = CliRunner().invoke(extract_main, ["--dataset", "corpus", option, value, "--manifest-dir", str(manifest_dir),
                                          "--features-dir", str(tmp_path / "f")])
    assert r.exit_code == 2 and f"Invalid value for '{option}'" in r.output
    assert not (tmp_path / "f").exists()


def test_old_stores_without_fingerprints_are_recomputed_once(corpus):
    manifest_dir, rows, fdir = corpus
    for split in SPLITS:  # as a version-1 store: no fingerprint columns, no generation record
        with h5py.File(store_path(fdir, "corpus", split), "r+") as f:
            for k in ("row_sha256", "audio_sha256", "audio_size", "audio_mtime_ns", "seconds"):
                del f["utterances"][k]
            f.attrs["format_version"] = 1
    generation_path(fdir, "corpus").unlink()
    summary = _extract(manifest_dir, fdir)
    assert len(summary.changed) == len(rows) and all("without a fingerprint" in w for w in summary.changed.values())
    assert _extract(manifest_dir, fdir).already_done == len(rows)


def test_audio_deleted_after_extraction_keeps_its_features_and_is_named(corpus):
    manifest_dir, rows, fdir = corpus
    for u in rows[:2]:
        os.remove(u.path)
    lines: list[str] = []
    summary = _extract(manifest_dir, fdir, echo=lines.append)
    assert summary.computed == 0 and summary.already_done == len(rows) and not summary.skipped
    assert summary.missing_audio == {u.utt_id: u.path for u in rows[:2]}
    note = [s for s in lines if "audio file is gone" in s]
    assert len(note) == 1 and rows[0].path in note[0] and rows[1].path in note[0], lines
