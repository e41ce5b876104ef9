"""Suite-wide settings. The suite runs in a random order (pytest-randomly, from the ``test`` extra): the seed
is printed at the end of every run, even with ``-q``, so an order-dependent failure can be replayed with
``python -m pytest -q -p randomly --randomly-seed=N tests``."""

from __future__ import annotations


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if config.pluginmanager.hasplugin("randomly") and config.getoption("randomly_seed", None) is not None:
        seed = config.getoption("randomly_seed")
        terminalreporter.write_line(f"test order: random, --randomly-seed={seed} "
                                    f"(replay: python -m pytest -p randomly --randomly-seed={seed} tests)")
