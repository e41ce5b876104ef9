"""sercore.cluster: the one Dask client lifecycle of extract and the grid (start, say where, close cleanly)."""

from __future__ import annotations

import json
import logging
import os
import time

import pytest
from distributed.diagnostics.plugin import WorkerPlugin

from sercore.cluster import connect, dask_client, write_scheduler_file
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
