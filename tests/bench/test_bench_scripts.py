"""Every benchmark script starts as ``python -m bench.NAME`` (docs/benchmarks.md): its ``--help`` exits 0."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(p.stem for p in (ROOT / "bench").glob("*.py") if 'if __name__ == "__main__":' in p.read_text())

#: One process for all (torch is imported once): each script run as ``python -m bench.NAME --help`` would run it.
RUN_EACH = """
import json, runpy, sys
codes = {}
for name in sys.argv[1:]:
    sys.argv = [name, "--help"]
    try:
        runpy.run_module(f"bench.{name}", run_name="__main__", alter_sys=True)
        codes[name] = "returned without --help's exit"
    except SystemExit as exc:
        codes[name] = exc.code or 0
    except BaseException as exc:
        codes[name] = f"{type(exc).__name__}: {exc}"
print("CODES " + json.dumps(codes))
"""


def test_every_benchmark_script_answers_help_as_a_module():
    assert {"run", "vs_baselines", "batch_memory", "gpu_check"} <= set(SCRIPTS)
    r = subprocess.run([sys.executable, "-c", RUN_EACH, *SCRIPTS], cwd=ROOT, capture_output=True, text=True, timeout=600)
    line = [x for x in r.stdout.splitlines() if x.startswith("CODES ")]
    assert line, r.stdout[-2000:] + r.stderr[-2000:]
    assert json.loads(line[0][6:]) == {name: 0 for name in SCRIPTS}
