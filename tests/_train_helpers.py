"""Helpers of the trainer's tests: tiny synthetic feature stores (:mod:`sercore.synthetic`), a bundle checked
against its run record, scrambled test rows."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

# The synthetic stores every train test uses (also bench/store_damage.py's): sercore.synthetic.
from sercore.synthetic import EMOTIONS, make_stores  # noqa: F401 - the tests import them from here


def collated(data, rows: Sequence[int], features: Sequence[str]):
    """Domain ``data``'s utterances ``rows`` with their stored ``features`` as one batch (unstandardised)."""
    import torch

    from train.model_io import Example, collate

    return collate([Example(data.utt_ids[i], {f: torch.from_numpy(data.features[f][i]) for f in features}, 0)
                    for i in rows])


def selected_run(out: Path, spec: str, stores: Path, features: Sequence[str]):
    """What a test needs to check a run folder's bundle against its run record: ``bundle`` (``out``'s), ``record``
    (the bundle's selected run, as written in runs/run<k>.json), ``data`` (domain ``spec`` of ``stores``), ``rows``
    (the record's test utterances in ``data``), ``batch`` (those utterances, collated) and ``probabilities`` (the
    bundle's class probabilities for that batch)."""
    import json
    from types import SimpleNamespace

    import torch

    from predict.bundle import load_bundle
    from train.domains import load_domain, resolve_domain

    bundle = load_bundle(out)
    run = bundle.meta["selected_run"]["run"]
    record = json.loads((out / "runs" / f"run{run}.json").read_text())
    data = load_domain(resolve_domain(spec, stores), stores, list(features))
    rows = [data.utt_ids.index(u) for u in record["test"]["utt_ids"]]
    batch = collated(data, rows, features)
    with torch.no_grad():
        probabilities = torch.softmax(bundle.model(batch).logits, -1).numpy()
    return SimpleNamespace(bundle=bundle, record=record, data=data, rows=rows, batch=batch, probabilities=probabilities)


def scrambled_test(data, test_rows: Sequence[int], features: Sequence[str], *, shuffle_labels: bool, seed: int = 5):
    """A copy of domain ``data`` whose test rows hold noise (9 x a standard normal) for every feature of ``features``
    and, with ``shuffle_labels``, the test rows' emotions permuted among them: what a choice made without test data
    must not notice."""
    import copy

    other = copy.deepcopy(data)
    rng = np.random.default_rng(seed)
    shuffled = [data.emotions[i] for i in rng.permutation(test_rows)]
    for k, i in enumerate(test_rows):
        for f in features:
            other.features[f][i] = rng.normal(size=other.features[f][i].shape).astype(np.float32) * 9
        if shuffle_labels:
            other.emotions[i] = shuffled[k]
    return other


def run_train(*args: str):
    """``train ARGS`` in this process (click's runner; exceptions become the result's exit code and output)."""
    from click.testing import CliRunner

    from train.cli import main

    return CliRunner().invoke(main, list(args))


def one_error_line(output: str) -> str:
    """The last non-empty line of a command's output, which must hold no traceback."""
    lines = [line for line in output.strip().splitlines() if line.strip()]
    assert lines and "Traceback" not in output, output
    return lines[-1]


def base_args(stores: Path, out: Path, *extra: str) -> list[str]:
    """``train`` arguments for one quick run (one seed, one epoch) of the synthetic German stores ``stores``."""
    return ["--domains", "de=synth", "--features-dir", str(stores), "--epochs", "1", "--seeds", "1", "--out", str(out),
            *extra]
