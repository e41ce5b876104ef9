"""A real `extract` process killed by SIGKILL at several moments: what is on disk always opens, and a rerun
stores every utterance exactly once, with the same features as an uninterrupted run (the same within
the cross-process tolerance of ``tests/_same_features.py``: the killed child computed some of them).

To kill *inside* a write deterministically, the child process pauses in the middle of writing the files
named by ``SLOW_H5``: a part file's bytes (parts are built in memory, then written in one go) or h5py's
``create_dataset`` calls on the consolidated store. The kill then lands while a ``*.tmp`` file is open and
half written (the test checks that it did).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from extract.pipeline import extract_dataset
from sercore.store import FeatureStore, parts_dir, store_path
from tests._same_features import assert_same_features
from tests.extract.test_extract_pipeline import make_corpus

SPLITS = ("train", "valid", "test")

# The child: `extract` with an optional slow-down inside the writes of the matching files. A part is built in
# memory and written to its *.tmp with one write_bytes: that write is cut in two halves with a pause between.
# A store is written by HDF5 itself: each dataset's creation pauses.
CHILD = r"""
import os, sys, time
match, delay = os.environ.get("SLOW_H5", ""), float(os.environ.get("SLOW_H5_DELAY", "0.1"))
if match == "parts":
    import pathlib
    write_bytes = pathlib.Path.write_bytes
    def slow_bytes(self, data):
        if ".parts" not in str(self):
            return write_bytes(self, data)
        data = memoryview(data).cast("B")
        with open(self, "wb") as fh:
            fh.write(data[: len(data) // 2])
            fh.flush()
            time.sleep(delay)
            fh.write(data[len(data) // 2:])
        return len(data)
    pathlib.Path.write_bytes = slow_bytes
elif match:
    import h5py
    create = h5py.Group.create_dataset
    def slow(self, *args, **kwargs):
        if ".parts" not in str(self.file.filename):
            time.sleep(delay)
        return create(self, *args, **kwargs)
    h5py.Group.create_dataset = slow
from extract.cli import main
main(sys.argv[1:])
"""


def _start(manifest_dir: Path, fdir: Path, slow: str = "") -> subprocess.Popen:
    cmd = [sys.executable, "-c", CHILD, "--dataset", "corpus", "--features", "mfcc", "--workers", "0",
           "--batch-size", "2", "--quiet", "--manifest-dir", str(manifest_dir), "--features-dir", str(fdir)]
    env = {**os.environ, "SLOW_H5": slow, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True, env=env)


def _ready(ready) -> bool:
    """``ready()``, False when a folder it lists vanished meanwhile (the child removes consolidated parts)."""
    try:
        return ready()
    except FileNotFoundError:
        return False


def _kill_when(proc: subprocess.Popen, ready, fdir: Path, timeout: float = 60.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None and not _ready(ready):
        time.sleep(0.005)
    if proc.poll() is not None:  # list the files only once the child is gone: it renames and removes them
        files = sorted(str(p.relative_to(fdir)) for p in fdir.rglob("*")) if fdir.exists() else []
        pytest.fail(f"extract ended (status {proc.returncode}) before the kill point; files: {files}; "
                    f"stderr: {proc.stderr.read().decode()[-500:]}")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _contents(fdir: Path) -> dict[str, np.ndarray]:
    out = {}
    for split in SPLITS:
        with FeatureStore(store_path(fdir, "corpus", split)) as s:
            for u, a in zip(s.utt_ids, s.read("mfcc")):
                assert u not in out, f"{u} stored twice"
                out[u] = a
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("ref")
    manifest_dir, rows = make_corpus(root, n=12)
    fdir = root / "features"
    extract_dataset("corpus", ["mfcc"], manifest_dir=manifest_dir, features_dir=fdir, workers=0, progress=False,
                    echo=lambda s: None)
    return _contents(fdir)


def _tmp_files(fdir: Path) -> list[Path]:
    return list(fdir.rglob("*.tmp"))


MOMENTS = {
    # name: (what to slow down, when to kill, a *.tmp must be left by the kill)
    "early_before_any_file": ("", lambda fdir: True, False),
    "inside_the_first_part_write": ("parts", lambda fdir: any(fdir.glob("corpus/*.parts/*.tmp")), True),
    "between_parts": ("", lambda fdir: len(list(fdir.glob("corpus/*.parts/*.h5"))) >= 3, False),
    "inside_consolidation": ("store", lambda fdir: any(fdir.glob("corpus/*.h5.tmp")), True),
    "after_the_first_split_is_consolidated": ("store", lambda fdir: sum(store_path(fdir, "corpus", s).exists() for s in SPLITS) >= 1, False),
}


@pytest.mark.slow
@pytest.mark.parametrize("moment", list(MOMENTS))
def test_sigkill_at_any_moment_then_rerun_gives_the_uninterrupted_stores(tmp_path, reference, moment):
    slow, ready, leaves_tmp = MOMENTS[moment]
    manifest_dir, rows = make_corpus(tmp_path, n=12)
    fdir = tmp_path / "features"
    _kill_when(_start(manifest_dir, fdir, slow), lambda: ready(fdir), fdir)
    if leaves_tmp:
        assert _tmp_files(fdir), "the kill did not land inside an HDF5 write"
    for p in fdir.rglob("*.h5"):  # every complete-named file opens (parts and stores)
        FeatureStore(p).close()
    summary = extract_dataset("corpus", ["mfcc"], manifest_dir=manifest_dir, features_dir=fdir, workers=0,
                              progress=False, echo=lambda s: None)
    assert summary.computed + summary.already_done == len(rows) and not summary.skipped
    got = _contents(fdir)
    assert sorted(got) == sorted(reference)
    for u, a in reference.items():  # parts of the killed subprocess are in there: the cross-process rule
        assert_same_features(got[u], a, same_process=False)
    assert not _tmp_files(fdir) and not any(parts_dir(fdir, "corpus", s).exists() for s in SPLITS)



@pytest.mark.parametrize("left", ["an_empty_parts_folder", "parts_already_merged_into_the_store"])
def test_a_kill_between_writing_the_store_and_removing_its_parts_is_cleaned_up_by_the_rerun(tmp_path, reference, left):
    """The two states a kill can leave after the consolidated store is renamed into place and before its parts
    are gone (the random kill above lands there only now and then): the rerun removes them."""
    manifest_dir, rows = make_corpus(tmp_path, n=12)
    fdir = tmp_path / "features"
    extract_dataset("corpus", ["mfcc"], manifest_dir=manifest_dir, features_dir=fdir, workers=0, progress=False,
                    echo=lambda s: None)
    pdir = parts_dir(fdir, "corpus", "train")
    pdir.mkdir()
    if left == "parts_already_merged_into_the_store":
        store = store_path(fdir, "corpus", "train")
        (pdir / "part-00000000000000000001-00000.h5").write_bytes(store.read_bytes())
    summary = extract_dataset("corpus", ["mfcc"], manifest_dir=manifest_dir, features_dir=fdir, workers=0,
                              progress=False, echo=lambda s: None)
    assert summary.already_done == len(rows) and not summary.computed
    assert not pdir.exists()
    got = _contents(fdir)
    assert sorted(got) == sorted(reference)
    for u, a in reference.items():
        assert_same_features(got[u], a, same_process=True)


@pytest.mark.slow
def test_kill_during_consolidation_keeps_the_old_complete_store(tmp_path, reference):
    """A store from an earlier run survives a kill while the next run rewrites it, and the rerun merges both."""
    manifest_dir, rows = make_corpus(tmp_path, n=12)
    from sercore.manifest import write_manifest

    write_manifest(rows[:6], manifest_dir / "corpus.csv")  # the corpus grows between two runs
    fdir = tmp_path / "features"
    extract_dataset("corpus", ["mfcc"], manifest_dir=manifest_dir, features_dir=fdir, workers=0, progress=False,
                    echo=lambda s: None)
    before = _contents(fdir)
    write_manifest(rows, manifest_dir / "corpus.csv")
    _kill_when(_start(manifest_dir, fdir, "store"), lambda: any(fdir.glob("corpus/*.h5.tmp")), fdir)
    assert _tmp_files(fdir)
    after_kill = _contents(fdir)  # the old stores open, complete, untouched (read back in this process: bit-identical)
    assert after_kill.keys() == before.keys()
    for u, a in before.items():
        assert_same_features(after_kill[u], a, same_process=True)
    extract_dataset("corpus", ["mfcc"], manifest_dir=manifest_dir, features_dir=fdir, workers=0, progress=False,
                    echo=lambda s: None)
    got = _contents(fdir)
    assert sorted(got) == sorted(reference)
    for u, a in reference.items():  # parts of the killed subprocess are in there: the cross-process rule
        assert_same_features(got[u], a, same_process=False)


#: On PYTHONPATH of a child and of the Dask workers it starts: every soundfile.read takes SLOW_DECODE seconds longer.
SLOW_DECODE = """\
import os
if os.environ.get("SLOW_DECODE"):
    import time, soundfile
    _read = soundfile.read
    def read(*args, **kwargs):
        time.sleep(float(os.environ["SLOW_DECODE"]))
        return _read(*args, **kwargs)
    soundfile.read = read
"""


def _signal_masks(pid: int) -> str:
    """The SigBlk, SigIgn and SigCgt lines of /proc/PID/status (SIGINT is bit 1 of each mask)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return "(no /proc status)"
    return " ".join(line.replace("\t", " ") for line in lines if line.startswith(("SigBlk", "SigIgn", "SigCgt")))


def test_ctrl_c_to_the_process_group_stops_dask_extraction_in_seconds_with_one_line_and_it_resumes(tmp_path):
    # 40 decodes of 1 s on 2 workers: 20 s of work, so that Ctrl-C comes long before the end even when a loaded
    # machine lets this process write its first part late (with 0.4 s, at load 10, it had finished: exit 0)
    manifest_dir, rows = make_corpus(tmp_path, n=40)
    fdir = tmp_path / "features"
    slow = tmp_path / "slow"
    slow.mkdir()
    (slow / "sitecustomize.py").write_text(SLOW_DECODE)
    env = {**os.environ, "PYTHONPATH": f"{slow}{os.pathsep}{Path(__file__).resolve().parents[2]}", "SLOW_DECODE": "1.0"}
    args = ["--dataset", "corpus", "--features", "mfcc", "--workers", "2", "--batch-size", "2",
            "--manifest-dir", str(manifest_dir), "--features-dir", str(fdir)]
    # `extract` as a terminal starts it, with Ctrl-C not ignored: a suite run in the background (`cmd &` in a
    # script, nohup) starts with SIGINT ignored, every child inherits that, and an ignored SIGINT stays ignored
    # (as it should: that is what nohup asks for)
    cmd = [sys.executable, "-c", "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
           "sys.argv = ['extract', *sys.argv[1:]]; runpy.run_module('extract.cli', run_name='__main__')", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True, env=env,
                            text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None and not any(fdir.glob("corpus/*.parts/part-*.h5")):
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read()[-2000:]
        masks = _signal_masks(proc.pid)  # for the message: whether the child ignores, blocks or catches SIGINT
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal sends on Ctrl-C
        start = time.time()
        _, err = proc.communicate(timeout=20)
        took = time.time() - start
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130 and err.strip().splitlines() == ["interrupted"], f"{masks}\n{err[-3000:]}"
    assert took < 8, took
    left = time.time() + 5  # no worker process left behind (multiprocessing's resource tracker exits just after)
    while time.time() < left:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("processes of the interrupted extract are still running 5 s after it exited")
    assert not _tmp_files(fdir)
    for part in fdir.glob("corpus/*.parts/part-*.h5"):  # every file left is complete
        with FeatureStore(part) as st:
            assert len(st.utt_ids) + len(st.skipped) >= 1
    done = extract_dataset("corpus", ["mfcc"], manifest_dir=manifest_dir, features_dir=fdir, workers=0, progress=False,
                           echo=lambda s: None)
    assert done.already_done + done.computed == len(rows) and 0 < done.already_done < len(rows)
    assert sorted(_contents(fdir)) == sorted(u.utt_id for u in rows)


WEDGED = """
import multiprocessing, signal, sys, time
from sercore.cluster import exit_after

def wedged():
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    time.sleep(60)

if __name__ == "__main__":
    child = multiprocessing.get_context("spawn").Process(target=wedged)
    child.start()
    print(child.pid, flush=True)
    exit_after(0.5)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    time.sleep(60)  # a shutdown that never ends
"""


def test_an_interrupted_process_whose_shutdown_hangs_still_ends_with_130_and_one_line(tmp_path):
    """The watchdog that the Dask client starts on Ctrl-C (sercore.cluster.exit_after): a process whose shutdown
    hangs, with a child process that ignores SIGINT, still exits with 130, one line, its child killed."""
    script = tmp_path / "wedged.py"
    script.write_text(WEDGED)
    start = time.time()
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=30,
                       env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert r.returncode == 130 and r.stderr.strip().splitlines() == ["interrupted"], r.stderr[-2000:]
    assert time.time() - start < 20
    child = int(r.stdout.split()[0])
    left = time.time() + 5
    while time.time() < left and _proc_state(child) != "Z":
        time.sleep(0.1)
    assert _proc_state(child) == "Z", "the child process was not killed"


def _proc_state(pid: int) -> str:
    """The state letter of process ``pid`` (``Z`` also when it is gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return "Z"
