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
def _torch_threads_as_found():
    """Restore torch's thread count after each test: code run in-process (the grid sets its cells' threads)
    must not change the floats of later tests, which compare in-process results with subprocesses'."""
    import torch

    threads = torch.get_num_threads()
    yield
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
