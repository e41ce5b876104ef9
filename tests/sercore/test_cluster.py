"""sercore.cluster: the one Dask client lifecycle of extract and the grid (start, say where, close cleanly)."""

from __future__ import annotations

import json
import logging
import os
import time
from types import SimpleNamespace

import pytest
from distributed.diagnostics.plugin import WorkerPlugin

from sercore.cluster import DASK_TRIM, DASK_TRIM_CONFIG, connect, dask_client, without_dask_trim, write_scheduler_file
from sercore.errors import EnvironmentProblem


class SlowTeardown(WorkerPlugin):
    """A worker that needs 4.5 s to close, as a loaded machine's workers with torch loaded sometimes do."""

    def teardown(self, worker):
        time.sleep(4.5)


class Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.mark.slow
def test_a_local_cluster_prints_its_dashboard_and_closes_a_slow_worker_without_killing_it():
    records = Records()
    nanny = logging.getLogger("distributed.nanny")
    nanny.addHandler(records)
    lines: list[str] = []
    environ = dict(os.environ)
    try:
        with dask_client(1, echo=lines.append) as client:
            client.register_plugin(SlowTeardown())
            assert client.submit(sum, [1, 2]).result() == 3
            assert os.environ.get("OMP_NUM_THREADS") == "1"  # what distributed writes while its workers start
            # not Dask's MALLOC_TRIM_THRESHOLD_ (it slows training down): the worker has this process's own, if any
            assert client.submit(os.environ.get, DASK_TRIM).result() == environ.get(DASK_TRIM)
    finally:
        nanny.removeHandler(records)
    assert dict(os.environ) == environ  # and what the client gives back: later subprocesses keep their threads
    assert lines and lines[0].startswith("dask: 1 worker(s), scheduler tcp://") and "a local cluster" in lines[0]
    assert "dashboard http://127.0.0.1:" in lines[0] or "no dashboard" in lines[0]
    assert not [m for m in records.messages if "still alive" in m], records.messages


def test_a_scheduler_file_is_an_address_and_an_absent_scheduler_is_an_environment_problem(tmp_path):
    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=0, processes=False, dashboard_address=None) as cluster:
        path = tmp_path / "scheduler.json"
        write_scheduler_file(path, cluster.scheduler_address, None)
        assert json.loads(path.read_text())["address"] == cluster.scheduler_address
        lines: list[str] = []
        with dask_client(scheduler=str(path), resources={"GPU": 1}, echo=lines.append) as client:
            assert client.scheduler.address == cluster.scheduler_address
        assert "no worker of this cluster has the resource GPU" in lines[1]
    with pytest.raises(EnvironmentProblem, match=r"^tcp://127.0.0.1:9: cannot reach the Dask scheduler") as info:
        connect("tcp://127.0.0.1:9", timeout=1)
    assert info.value.exit_code == 4


# ---------------------------------------------------------------------------------------------- GPU workers
# No GPU is needed: the GPUs are faked (torch's device count, or the list of visible GPUs), and what is checked
# is what each worker process is given (its CUDA_VISIBLE_DEVICES, the resource GPU=1) and which cluster is made.


def test_the_visible_gpus_are_those_of_cuda_visible_devices_or_every_device_torch_counts(monkeypatch):
    import torch

    from sercore.cluster import visible_gpus

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert visible_gpus() == ["0", "1", "2"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5,GPU-1b2c, 7")  # as SLURM sets it for an allocation
    assert visible_gpus() == ["5", "GPU-1b2c", "7"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert visible_gpus() == []


def test_gpu_workers_without_a_visible_gpu_are_an_environment_problem(monkeypatch):
    import sercore.cluster as cluster

    monkeypatch.setattr(cluster, "visible_gpus", lambda: [])
    with pytest.raises(EnvironmentProblem, match=r"^--device: cuda: no CUDA device is visible for GPU workers") as info:
        with dask_client(2, gpu=True, echo=lambda line: None):
            pass
    assert info.value.exit_code == 4


@pytest.mark.slow
def test_without_dask_cuda_each_gpu_gets_one_worker_that_sees_only_it_and_offers_gpu_1(monkeypatch):
    import sys

    import sercore.cluster as cluster

    monkeypatch.setitem(sys.modules, "dask_cuda", None)  # `import dask_cuda` raises ImportError
    monkeypatch.setattr(cluster, "visible_gpus", lambda: ["3", "5"])
    lines: list[str] = []
    with dask_client(4, gpu=True, echo=lines.append) as client:
        seen = client.run(lambda: os.environ.get("CUDA_VISIBLE_DEVICES"))
        workers = client.scheduler_info(n_workers=-1)["workers"].values()
        resources = sorted((w["name"], w["resources"].get("GPU"), w["nthreads"]) for w in workers)
        on_gpu = client.submit(lambda: os.environ["CUDA_VISIBLE_DEVICES"], resources={"GPU": 1}, pure=False).result()
    assert sorted(seen.values()) == ["3", "5"]
    assert resources == [("gpu3", 1, 1), ("gpu5", 1, 1)]
    assert on_gpu in ("3", "5")
    assert lines[0].startswith("dask: 2 worker(s)") and "one worker per GPU" in lines[0], lines


def test_with_dask_cuda_its_local_cuda_cluster_gets_the_gpus_up_to_workers(monkeypatch):
    import sys

    from dask.distributed import LocalCluster

    import sercore.cluster as cluster

    made: list[dict] = []

    def local_cuda_cluster(**kwargs):
        made.append(kwargs)
        return LocalCluster(n_workers=kwargs["n_workers"], threads_per_worker=1, processes=False, dashboard_address=None,
                            resources=kwargs["resources"])

    monkeypatch.setitem(sys.modules, "dask_cuda", SimpleNamespace(LocalCUDACluster=local_cuda_cluster))
    monkeypatch.setattr(cluster, "visible_gpus", lambda: ["0", "1", "2"])
    lines: list[str] = []
    with dask_client(2, gpu=True, echo=lines.append) as client:
        assert client.submit(sum, [1, 2], resources={"GPU": 1}).result() == 3
    (kwargs,) = made
    assert kwargs["CUDA_VISIBLE_DEVICES"] == ["0", "1"] and kwargs["n_workers"] == 2
    assert kwargs["resources"] == {"GPU": 1} and kwargs["threads_per_worker"] == 1
    assert "sercore.cluster" in kwargs["preload"]  # the workers still ignore Ctrl-C
    assert lines[0] == "note: 3 GPUs visible, 2 used (--workers 2); give --workers 3 for all"


@pytest.mark.slow
def test_extract_on_cuda_with_workers_runs_its_batches_on_the_gpu_workers(tmp_path, monkeypatch):
    """The whole command with two faked GPUs: mfcc ignores the device, so the workers can run it on a CPU."""
    import numpy as np
    import soundfile as sf
    from click.testing import CliRunner

    import sercore.cluster as cluster
    import sercore.device as device
    from extract.cli import main as extract_main
    from sercore.manifest import Utterance, write_manifest
    from sercore.store import FeatureStore, store_path

    monkeypatch.setattr(device, "check_cuda", lambda *args, **kwargs: None)
    monkeypatch.setattr(cluster, "visible_gpus", lambda: ["0", "1"])
    rows = []
    for i in range(4):
        path = tmp_path / f"a{i}.wav"
        sf.write(path, 0.1 * np.sin(np.arange(8000) * (0.05 + 0.01 * i)).astype(np.float32), 16000)
        rows.append(Utterance(f"a{i}", str(path), f"s{i % 2}", "de", ("neutral", "angry")[i % 2], "train"))
    write_manifest(rows, tmp_path / "manifests/c.csv")
    r = CliRunner().invoke(extract_main, ["--dataset", "c", "--features", "mfcc", "--device", "cuda", "--workers", "2",
                                          "--batch-size", "1", "--manifest-dir", str(tmp_path / "manifests"),
                                          "--features-dir", str(tmp_path / "features")])
    assert r.exit_code == 0, r.output
    assert "dask: 2 worker(s)" in r.output and "one worker per GPU" in r.output
    with FeatureStore(store_path(tmp_path / "features", "c", "train")) as store:
        assert len(store) == 4


def test_train_subprocesses_drop_the_trim_setting_dask_gives_its_workers_and_keep_one_set_otherwise():
    import dask

    dask_value = str(dask.config.get(DASK_TRIM_CONFIG))
    assert without_dask_trim({DASK_TRIM: dask_value, "A": "1"}) == {"A": "1"}
    assert without_dask_trim({DASK_TRIM: dask_value + "0", "A": "1"}) == {DASK_TRIM: dask_value + "0", "A": "1"}
    with dask.config.set({DASK_TRIM_CONFIG: None}):  # a worker of the toolkit's local cluster: the value is the user's
        assert without_dask_trim({DASK_TRIM: dask_value}) == {DASK_TRIM: dask_value}
