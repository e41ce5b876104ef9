"""Suite-wide settings. The suite runs in a random order (pytest-randomly, from the ``test`` extra): the seed
is printed at the end of every run, even with ``-q``, so an order-dependent failure can be replayed with
``python -m pytest -q -p randomly --randomly-seed=N tests``."""

from __future__ import annotations

import pytest


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if config.pluginmanager.hasplugin("randomly") and config.getoption("randomly_seed", None) is not None:
        seed = config.getoption("randomly_seed")
        terminalreporter.write_line(f"test order: random, --randomly-seed={seed} "
                                    f"(replay: python -m pytest -p randomly --randomly-seed={seed} tests)")


@pytest.fixture(autouse=True)
def _process_state_as_found():
    """Restore torch's thread count and the environment after each test. A test may start a Dask LocalCluster
    of its own, which writes OMP_NUM_THREADS=1 (and more) into this process's environment; later tests compare
    in-process results with those of subprocesses, whose threads, and so floats, follow the environment. (That
    the library's own ``dask_client`` and grid cells leave both as found is tested in test_cluster/test_grid.)"""
    import os

    import torch

    from sercore.cluster import restore_environ

    threads, environ = torch.get_num_threads(), dict(os.environ)
    yield
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    restore_environ(environ)
