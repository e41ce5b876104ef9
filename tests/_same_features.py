"""What "the same features" means in this test suite.

Float results of the extractors (librosa's MFCC, GE2E's torch network) are deterministic for one process,
but not bit-identical *across* processes: BLAS and OpenMP pick kernels and summation orders by thread
count, CPU features and settings that earlier code in the process left behind. So:

- **in one process** (a rerun that reads back what the same process stored, a store copied by
  consolidation): bit-identical;
- **across processes** (a killed subprocess's parts merged with an in-process rerun, Dask workers vs the
  serial path): equal within a relative tolerance of :data:`RTOL` of each array's own scale
  (``|got - want| <= RTOL * (|want| + max|want|)``). Measured: MFCCs of the same clip computed in two
  processes differ by up to 2.3e-6 on values of magnitude ~100-600 (relative ~1e-8), so 1e-5 is far above
  float noise and far below any real difference (another clip, another setting, stale audio).
"""

from __future__ import annotations

import numpy as np

RTOL = 1e-5


def assert_same_features(got: np.ndarray, want: np.ndarray, *, same_process: bool) -> None:
    """Assert that two feature arrays are "the same features" in the sense above (shapes must match exactly)."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"shape {got.shape} != {want.shape}"
    if same_process:
        np.testing.assert_array_equal(got, want)
        return
    scale = float(np.max(np.abs(want))) if want.size else 0.0
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=RTOL * scale)
