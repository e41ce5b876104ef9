"""The cluster recipe of docs/cluster.md on a real one-node SLURM started here.

A ``slurm.conf`` for localhost is written into a temporary folder, ``slurmctld -D`` and ``slurmd -D`` are
started by hand (``AuthType=auth/none``, no munge needed), and then exactly that page's commands run:
``mgser cluster slurm ...`` (workers as SLURM jobs through dask-jobqueue), ``extract --scheduler``
and ``run_all.sh --scheduler`` on a tiny generated corpus. The stores and tables must equal a local run's; a
worker job cancelled with ``scancel`` in the middle of the grid must leave a grid that finishes (its cell is
run again) and a rerun that has nothing left to do. Every daemon started here is stopped by its PID.

Skipped, with the reason, where SLURM is not installed (Debian: ``apt-get install slurm-wlm``; ``.ci/run``
installs it when it runs as root) or does not start.
"""

from __future__ import annotations

import csv
import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from sercore.manifest import Utterance, write_manifest
from sercore.store import FeatureStore, store_path

REPO = Path(__file__).resolve().parents[2]
DAEMONS = ("slurmctld", "slurmd", "sbatch", "squeue", "scancel", "sinfo")
EMOTIONS = ("angry", "sad", "neutral")

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the one-node SLURM of this test needs Linux")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def slurm_conf(folder: Path, user: str) -> str:
    """A one-node SLURM on localhost, everything under ``folder``, on free ports (several may run at once)."""
    cpus = os.cpu_count() or 1
    return f"""\
ClusterName=mgsertest
SlurmctldHost=localhost
SlurmUser={user}
SlurmdUser={user}
AuthType=auth/none
CredType=cred/none
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd.pid
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=2000 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


def _stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, wait: float = 20.0) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _tail(path: Path, n: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """SLURM_CONF of a running one-node SLURM, set in os.environ for this module's tests."""
    missing = [d for d in DAEMONS if shutil.which(d) is None]
    if missing:
        pytest.skip(f"SLURM is not installed here (no {', '.join(missing)}; Debian: apt-get install slurm-wlm)")
    pytest.importorskip("dask_jobqueue", reason="dask-jobqueue is not installed (pip install 'mgser[cluster]')")
    folder = tmp_path_factory.mktemp("slurm")
    for sub in ("state", "spool", "log"):
        (folder / sub).mkdir()
    conf = folder / "slurm.conf"
    conf.write_text(slurm_conf(folder, getpass.getuser()))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    daemons = []
    for daemon in ("slurmctld", "slurmd"):
        log = (folder / "log" / f"{daemon}.log").open("w")
        daemons.append(subprocess.Popen([daemon, "-D", "-f", str(conf)], stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, env=env))
    previous = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(conf)
    try:
        state = ""
        for _ in range(150):
            if any(d.poll() is not None for d in daemons):
                break
            state = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, env=env).stdout.strip()
            if state == "idle":
                break
            time.sleep(0.2)
        if state != "idle":
            logs = "\n".join(f"{d}: {_tail(folder / 'log' / f'{d}.log', 5)}" for d in ("slurmctld", "slurmd"))
            pytest.skip(f"the one-node SLURM did not start (node state {state!r}):\n{logs}")
        yield conf
    finally:
        subprocess.run(["scancel", "--full", "--partition", "debug"], env=env, capture_output=True)
        for _ in range(50):
            if not subprocess.run(["squeue", "-h"], capture_output=True, text=True, env=env).stdout.strip():
                break
            time.sleep(0.2)
        for d in reversed(daemons):
            _stop(d)
        if previous is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = previous


def make_corpus(root: Path, n: int = 36) -> Path:
    """n half-second tones of three emotions and three speakers (English), with a manifest; returns its folder."""
    rows = []
    sr = 16000
    t = np.arange(sr // 2) / sr
    for i in range(n):
        path = root / "wav" / f"u{i:03d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        f0 = 110 + 60 * (i % 3) + 7 * (i // 3)
        sf.write(path, (0.3 * np.sin(2 * np.pi * f0 * t) * (1 + 0.4 * np.sin(2 * np.pi * (2 + i % 3) * t))).astype(np.float32), sr)
        split = ("train", "train", "valid", "test")[(i // 3) % 4]
        rows.append(Utterance(f"u{i:03d}", str(path), f"s{(i // 3) % 3}", "en", EMOTIONS[i % 3], split))
    write_manifest(rows, root / "manifests" / "corpus.csv")
    return root / "manifests"


def _env() -> dict[str, str]:
    """This interpreter first on PATH (run_all.sh runs `python`), this checkout first on PYTHONPATH, one thread."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}


def _run(cmd: list[str], cwd: Path, timeout: float = 600) -> str:
    env = _env()
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, f"{' '.join(cmd)} exited with {r.returncode}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r.stdout + r.stderr


def _stores(features: Path) -> dict:
    out = {}
    for split in ("train", "valid", "test"):
        with FeatureStore(store_path(features, "corpus", split)) as s:
            out[split] = (s.utt_ids, s.emotions, s.speakers, s.read("mfcc"))
    return out


def _table(grid: Path) -> dict:
    """tables.csv without the column naming the metrics files (their folders differ)."""
    return {(r["table"], r["row"], r["language"]): {k: v for k, v in r.items() if k not in ("sources", "files")}
            for r in csv.DictReader((grid / "tables.csv").open())}


GRID = ["--features", "mfcc", "--parts", "single,aux", "--seeds", "2", "--epochs", "1", "--threads", "1",
        "--train-args=--no-checkpoints", "en=corpus"]


def test_the_readme_cluster_recipe_on_slurm_equals_a_local_run_and_survives_scancel(slurm, tmp_path):
    manifests = make_corpus(tmp_path / "corpus")
    common = ["--manifest-dir", str(manifests)]
    py = sys.executable

    # the reference: the same commands on this machine
    _run([py, "-m", "extract.cli", "--dataset", "corpus", "--features", "mfcc", "--workers", "1", *common,
          "--features-dir", "features_local"], tmp_path)
    _run(["bash", str(REPO / "run_all.sh"), "--workers", "1", *common, "--features-dir", "features_local",
          "--out", "grid_local", *GRID], tmp_path)

    # the documented recipe (docs/cluster.md): workers as SLURM jobs, then extract and run_all.sh on them
    env = _env()
    serve_log = (tmp_path / "cluster.log").open("w")
    server = subprocess.Popen([py, "-m", "mgser.cli", "cluster", "slurm", "--jobs", "2", "--cores", "1", "--memory", "1GB",
                               "--walltime", "00:10:00", "--interface", "lo", "--scheduler-file", "dask-scheduler.json",
                               "--log-dir", str(tmp_path / "jobs")], cwd=tmp_path, env=env, stdout=serve_log,
                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        for _ in range(300):
            if "2 worker(s) connected" in (tmp_path / "cluster.log").read_text() or server.poll() is not None:
                break
            time.sleep(0.2)
        assert "2 worker(s) connected" in (tmp_path / "cluster.log").read_text(), _tail(tmp_path / "cluster.log")
        sched = json.loads((tmp_path / "dask-scheduler.json").read_text())
        assert sched["address"].startswith("tcp://127.0.0.1:")
        jobs = subprocess.run(["squeue", "-h", "-o", "%i %j %T"], capture_output=True, text=True).stdout.split("\n")
        assert sum("dask-worker RUNNING" in j for j in jobs) == 2, jobs

        out = _run([py, "-m", "extract.cli", "--dataset", "corpus", "--features", "mfcc", "--scheduler",
                    "dask-scheduler.json", *common, "--features-dir", "features_slurm"], tmp_path)
        assert "2 worker(s), scheduler tcp://127.0.0.1:" in out and "36 computed" in out
        local, remote = _stores(tmp_path / "features_local"), _stores(tmp_path / "features_slurm")
        for split in local:
            assert local[split][:3] == remote[split][:3]
            for a, b in zip(local[split][3], remote[split][3]):
                np.testing.assert_array_equal(a, b)

        # the grid, with one of the two worker jobs cancelled while both are running a cell
        grid_log = (tmp_path / "grid.log").open("w")
        grid = subprocess.Popen(["bash", str(REPO / "run_all.sh"), "--scheduler", "dask-scheduler.json", *common,
                                 "--features-dir", "features_slurm", "--out", "grid_slurm", *GRID], cwd=tmp_path,
                                env=env, stdout=grid_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        running: list[Path] = []
        for _ in range(1500):
            running = [c.parent for c in (tmp_path / "grid_slurm").rglob("cell.json") if not (c.parent / "metrics.json").exists()]
            if len(running) == 2 or grid.poll() is not None:
                break
            time.sleep(0.1)
        assert len(running) == 2, _tail(tmp_path / "grid.log")
        victim = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True).stdout.split()[0]
        subprocess.run(["scancel", victim], check=True)
        assert grid.wait(600) == 0, _tail(tmp_path / "grid.log", 40)
        log = (tmp_path / "grid.log").read_text()
        assert "4/4 cells done" in log, log
        summary = json.loads((tmp_path / "grid_slurm" / "grid.json").read_text())
        assert all(c["state"] == "ok" for c in summary["cells"].values()), summary
        assert _table(tmp_path / "grid_local") == _table(tmp_path / "grid_slurm")

        # a rerun (the cluster has replaced the cancelled job by now, or will) has nothing left to do
        out = _run(["bash", str(REPO / "run_all.sh"), "--scheduler", "dask-scheduler.json", *common,
                    "--features-dir", "features_slurm", "--out", "grid_slurm", *GRID], tmp_path)
        assert "4 done already, 0 to run" in out
    finally:
        _stop(server, signal.SIGTERM, 60)
    assert "its jobs cancelled" in (tmp_path / "cluster.log").read_text()
    assert not (tmp_path / "dask-scheduler.json").exists()
    leftover = subprocess.run(["squeue", "-h", "-o", "%i %T"], capture_output=True, text=True).stdout.split("\n")
    assert not [j for j in leftover if "RUNNING" in j or "PENDING" in j], leftover


def _job_script(cluster) -> str:
    """The sbatch script of a (never started) SLURMCluster, which is then closed."""
    try:
        return cluster.job_script()
    finally:
        cluster.close()


def test_the_gpu_variant_asks_slurm_for_gpus_and_offers_the_dask_resource():
    pytest.importorskip("dask_jobqueue", reason="dask-jobqueue is not installed (pip install 'mgser[cluster]')")
    from sercore.cluster import slurm_cluster

    script = _job_script(slurm_cluster(4, "16GB", "04:00:00", gpus=1, queue="gpu", sbatch=("--qos=short",)))
    assert "#SBATCH --gres=gpu:1" in script and "#SBATCH --qos=short" in script and "#SBATCH -p gpu" in script
    assert "--resources GPU=1" in script and "#SBATCH --cpus-per-task=4" in script


def test_a_job_with_several_gpus_runs_one_worker_per_gpu_each_offering_one():
    pytest.importorskip("dask_jobqueue", reason="dask-jobqueue is not installed (pip install 'mgser[cluster]')")
    from sercore.cluster import slurm_cluster

    script = _job_script(slurm_cluster(8, "64GB", "04:00:00", gpus=4))
    assert "#SBATCH --gres=gpu:4" in script and "--nworkers 4" in script and "--nthreads 2" in script
    assert "--resources GPU=1" in script and "--preload sercore.gpu_worker" in script
    with pytest.raises(ValueError, match="2 core"):
        slurm_cluster(2, "8GB", "01:00:00", gpus=4)


def test_each_worker_of_a_several_gpu_job_keeps_its_own_gpu():
    from sercore.gpu_worker import worker_gpu

    assert [worker_gpu(f"SLURMCluster-3-{i}", "4,6,GPU-ab") for i in range(3)] == ["4", "6", "GPU-ab"]
    assert worker_gpu("SLURMCluster-3", "5") is None and worker_gpu("SLURMCluster-3-0", None) is None


@pytest.mark.slow
def test_dask_workers_of_one_job_see_one_gpu_each(tmp_path):
    """What a job script runs (``dask worker --nworkers 2 --name JOB --preload sercore.gpu_worker``), with the
    job's two GPUs in CUDA_VISIBLE_DEVICES: the worker processes keep one each."""
    from dask.distributed import Client, LocalCluster

    with LocalCluster(n_workers=0, processes=False, protocol="tcp", dashboard_address=None) as cluster:
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": "4,6", "PYTHONPATH": str(REPO)}
        worker = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", cluster.scheduler_address,
                                   "--nworkers", "2", "--nthreads", "1", "--name", "SLURMCluster-7", "--no-dashboard",
                                   "--resources", "GPU=1", "--preload", "sercore.gpu_worker"],
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            with Client(cluster) as client:
                client.wait_for_workers(2, timeout=120)
                seen = client.run(lambda: os.environ.get("CUDA_VISIBLE_DEVICES"))
        finally:
            worker.terminate()
            worker.wait(timeout=60)
    assert sorted(seen.values()) == ["4", "6"]
