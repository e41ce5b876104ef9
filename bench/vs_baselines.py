"""The network against the strongest simple baselines, on exactly the same splits and features.

    python bench/vs_baselines.py --domains de --features mfcc,ge2e,byol --protocol random
    python bench/vs_baselines.py --domains de --features mfcc,ge2e,byol --protocol speaker --train-args "--preset tuned --refit"
    python bench/vs_baselines.py --domains de --features mfcc,ge2e,byol --protocol random --train-args "--model ensemble --refit"

Per run (a seed of the random protocol, or a speaker fold: the trainer's own runs, from ``train.protocol.draw_split``):

- **network**: ``train --domains LANG --features ... --protocol ...`` plus ``--train-args``, fitted in this process
  into ``OUT/network`` (a rerun resumes its finished runs, as ``train`` does);
  ``--train-args "--model ensemble --refit"`` puts the ensemble (``train/ensemble_weights.py``: the network, logreg and
  rbfsvm, weights chosen on validation data) on this side: the network alone is then its member ``single``, whose
  test UA on each run is reported beside it (``members`` in ``result.json``);
- **baselines** on pooled statistics of the same features (``train/pooling.py``: mean and std of each sequence
  feature's frames and deltas, vectors as they are), standardised with the fitting data's statistics: the heads
  of ``train --model`` (``train/pooled_heads.py``): ``logreg`` (multinomial logistic regression), ``linsvm`` (linear SVM,
  one-vs-rest) and ``rbfsvm`` (RBF-kernel SVM). The regularisation C (and the RBF's gamma) is chosen by
  :func:`train.pooled_heads.select_head`, an inner cross-validation on the non-test data only (stratified 5 folds under
  the random protocol, speaker-grouped folds under the speaker protocol; score: UA = balanced accuracy), then the
  model is refitted on all non-test data (train + valid) and scored once on the run's test split. With
  ``--speaker-norm`` in ``--train-args`` the baselines get it too: their pooled vectors are standardised per
  speaker first (:func:`train.scaling.speaker_standardised`, as ``train --model logreg --speaker-norm`` does).

The test utterances of every network run are checked to be exactly the baselines' (a mismatch stops with exit
code 3). The best baseline is the one of the three with the highest mean test UA over runs: the strongest,
which favours the baseline; the network is compared with it on exactly the same runs. The paired difference
network - best baseline per run gives the mean and a 95% t interval over runs (n - 1 degrees of freedom).
Each run's baselines are kept in ``OUT/baselines/run<k>.json`` as soon as they
are fitted, with a SHA-256 of what they were fitted and tested on (the pooled features, labels, speakers of both
parts, and the grids): a rerun reuses a run's baselines only when that digest is unchanged, so an interrupted
benchmark resumes and a re-extracted store is fitted again. ``--finished-only`` trains nothing and compares on the runs already finished in
``OUT/network`` (a long benchmark read while it runs, or one stopped early; say so with its figures). Written: ``OUT/network/`` (train's outputs), ``OUT/result.json`` (every run,
both sides, the chosen C, the summary). The last line printed is::

    RESULT <lang> <protocol> network_ua=<x> baseline_ua=<y> baseline=<name> diff=<d> ci_low=<l> ci_high=<h> runs=<n>
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np


from train.pooling import pooled_features
from sercore.errors import EXIT_DATA, EXIT_USAGE, SerError, StoreError
from sercore.fsio import hash_array
from train.pooled_heads import HEADS, HeadConfig, inner_folds, select_head  # noqa: F401 - inner_folds: the bench's folds
from train.metrics import paired_interval
from train.scaling import speaker_standardised

#: Options vs_baselines sets itself; ``--train-args`` may not repeat them.
OWN_OPTIONS = ("--domains", "--features", "--protocol", "--seeds", "--first-seed", "--folds", "--out", "--features-dir",
               "--config")
#: The baselines: the heads of ``train --model`` (train/pooled_heads.py), with their default grids.
HEAD_CONFIGS = {name: HeadConfig(name) for name in HEADS}
#: C values searched per baseline (the RBF SVM also searches gamma: HeadConfig.gamma_scales / dim).
C_GRID = {name: c.cs for name, c in HEAD_CONFIGS.items()}


class UsageProblem(Exception):
    """A bad option value: one line, exit code 2."""


@dataclass(frozen=True)
class BaselineRun:
    """One baseline on one run: its test UA/WA, the C (and gamma) the inner CV chose, that inner CV's UA and
    the seconds the choice and the fit took."""

    ua: float
    wa: float
    c: float
    inner_ua: float
    gamma: float | None = None
    seconds: float | None = None


def fit_baseline(name: str, x_fit: np.ndarray, y_fit: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
                 classes: Sequence[str], groups: np.ndarray | None = None, seed: int = 0) -> BaselineRun:
    """Choose the hyperparameters by inner CV on (x_fit, y_fit) only (:func:`train.pooled_heads.select_head`), refit on
    all of it, score on the test rows.

    x_fit: (n_fit, dim), y_fit: (n_fit,) class indices, groups: (n_fit,) speakers or None.
    """
    from train.metrics import score

    fit = select_head(HEAD_CONFIGS[name], x_fit, y_fit, groups, seed=seed)
    s = score(y_test, fit.pipeline.predict(x_test), classes)
    return BaselineRun(ua=s.ua, wa=s.wa, c=float(fit.params["c"]), inner_ua=fit.inner_ua, gamma=fit.params.get("gamma"),
                       seconds=round(fit.seconds, 2))


def baseline_digest(x_fit: np.ndarray, y_fit: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
                    groups: np.ndarray | None) -> str:
    """SHA-256 of what a run's baselines are fitted and scored on, and of the grids searched."""
    import hashlib

    h = hashlib.sha256(json.dumps({k: c.as_dict() for k, c in HEAD_CONFIGS.items()}).encode())
    for a in (x_fit, y_fit, x_test, y_test, np.array([] if groups is None else groups, dtype=str)):
        h.update(str(a.dtype).encode())
        hash_array(h, a)
    return h.hexdigest()


def cached_baselines(path: Path, digest: str) -> dict[str, BaselineRun] | None:
    """A run's baselines kept by an earlier (possibly interrupted) invocation, if fitted on the same data."""
    try:
        kept = json.loads(path.read_text())
        if kept.get("digest") != digest or set(kept["baselines"]) != set(C_GRID):
            return None
        return {name: BaselineRun(**b) for name, b in kept["baselines"].items()}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def keep_baselines(path: Path, digest: str, base: dict[str, BaselineRun]) -> None:
    from sercore.fsio import write_atomic

    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"digest": digest, "baselines": {k: asdict(v) for k, v in base.items()}}, indent=2)
    write_atomic(path, lambda tmp: tmp.write_text(text))


def result_line(lang: str, protocol: str, network_ua: float, baseline_ua: float, baseline: str,
                diff: float, low: float, high: float, runs: int) -> str:
    return (f"RESULT {lang} {protocol} network_ua={network_ua:.4f} baseline_ua={baseline_ua:.4f} baseline={baseline} "
            f"diff={diff:+.4f} ci_low={low:+.4f} ci_high={high:+.4f} runs={runs}")


def train_arguments(args: argparse.Namespace, out: Path) -> list[str]:
    """The ``train`` command line of the network side."""
    extra = shlex.split(args.train_args)
    clash = [a for a in extra if a.split("=", 1)[0] in OWN_OPTIONS]
    if clash:
        raise UsageProblem(f"--train-args: {', '.join(clash)} is set by vs_baselines itself (give it to vs_baselines)")
    argv = ["--domains", args.domains, "--protocol", args.protocol, "--seeds", str(args.seeds),
            "--first-seed", str(args.first_seed), "--features-dir", args.features_dir, "--out", str(out / "network")]
    if args.features:
        argv += ["--features", args.features]
    if args.folds:
        argv += ["--folds", str(args.folds)]
    return argv + extra + (["--quiet"] if "--quiet" not in extra else [])


@dataclass(frozen=True)
class NetworkRun:
    """One finished run of the network, as its run record (``OUT/network/runs/run<k>.json``) holds it."""

    run: int
    seed: int
    fold: int | None
    ua: float
    wa: float
    valid_ua: float
    test_utt_ids: tuple[str, ...]
    #: ``train --model ensemble``: each member's weight, temperature and validation/test UA on this run
    #: (``train.ensemble_weights``); empty for any other model.
    members: dict | None = None


def network_runs(folder: Path) -> list[NetworkRun]:
    """The finished runs recorded in a ``train`` run folder, in run order (one language)."""
    from train.run_records import record_paths

    runs = []
    for path in record_paths(folder):
        try:
            r = json.loads(path.read_text())
            test, valid = r["test"]["scores"]["0"], r["valid"]["scores"]["0"]
            first = (r.get("history") or [{}])[0]
            members = first.get("ensemble", {}).get("members") if isinstance(first, dict) else None
            runs.append(NetworkRun(int(r["run"]), int(r["seed"]), r["fold"], float(test["ua"]), float(test["wa"]),
                                   float(valid["ua"]), tuple(r["test"]["utt_ids"]), members))
        except (OSError, ValueError, KeyError, TypeError):
            raise StoreError(path, "unreadable run record (not written by train?)") from None
    return runs


def check_run_folder(folder: Path, config) -> None:
    """--finished-only: the run folder must hold this comparison's experiment (protocol, folds, seeds, features)."""
    path = folder / "config.json"
    try:
        theirs = json.loads(path.read_text())
    except (OSError, ValueError):
        raise StoreError(path, "missing or unreadable: no network runs to compare with (run without --finished-only)") from None
    mine = {"protocol": config.protocol, "folds": config.folds, "first_seed": config.first_seed}
    diff = [k for k, v in mine.items() if theirs.get(k) != v]
    if list(theirs.get("resolved", {}).get("features", [])) != list(config.features or []):
        diff.append("features")
    if diff:
        raise StoreError(path, f"this run folder's experiment differs in {', '.join(diff)} from the options given")


def compare(args: argparse.Namespace, log: Callable[[str], None] = print) -> dict:
    """Fit both sides on every run and return the result dictionary (also written to OUT/result.json)."""
    import click

    from train.cli import config_from_args
    from train.repeated_runs import load_domains, resolved, run_experiment
    from train.protocol import draw_split, n_runs, split_indices, split_key

    out = Path(args.out or f"runs/vs_baselines/{args.domains}_{args.protocol}")
    try:
        config = config_from_args(train_arguments(args, out))
    except click.ClickException as exc:
        raise UsageProblem(f"--train-args: {exc.format_message()}") from None
    if len(config.domains) != 1:
        raise UsageProblem(f"--domains {args.domains}: give one language (the baselines are single-language models)")
    domain_data, features = load_domains(config)
    config = resolved(config, domain_data, features)
    data = domain_data[0]
    lang = data.spec.language
    start = time.perf_counter()
    total = n_runs(data, config.protocol, config.seeds, config.folds)
    if args.finished_only:
        check_run_folder(Path(config.out), config)
        log(f"--finished-only: the network runs already finished in {config.out} (nothing is trained)")
    else:
        run_experiment(config, log=log, domain_data=domain_data, features=features)
    network_seconds = time.perf_counter() - start
    finished = [r for r in network_runs(Path(config.out)) if r.run < total]
    if not finished:
        raise StoreError(Path(config.out), "no finished network run to compare with")

    x = pooled_features(data, features)
    y = np.array([data.classes.index(e) for e in data.emotions])
    speakers = np.array(data.speakers)
    if config.train.speaker_norm:  # what the network side gets, the baselines get too
        x = speaker_standardised(x, speakers)
    rows, start = [], time.perf_counter()
    for net in finished:
        run = net.run
        idx = split_indices(draw_split(data, config.protocol, split_key(config.protocol, config.first_seed, run),
                                       config.folds))
        fit_rows, test_rows = np.array(idx["train"] + idx["valid"]), np.array(idx["test"])
        if sorted(net.test_utt_ids) != sorted(data.utt_ids[i] for i in test_rows):
            raise StoreError(Path(config.out), f"run {run}: the network was tested on other utterances than the baselines")
        groups = speakers[fit_rows] if config.protocol == "speaker" else None
        digest = baseline_digest(x[fit_rows], y[fit_rows], x[test_rows], y[test_rows], groups)
        kept = out / "baselines" / f"run{run}.json"
        base = cached_baselines(kept, digest)
        if base is None:
            base = {name: fit_baseline(name, x[fit_rows], y[fit_rows], x[test_rows], y[test_rows], data.classes, groups, seed=run)
                    for name in C_GRID}
            keep_baselines(kept, digest, base)
        row = {"run": run, "seed": net.seed, "fold": net.fold, "test_speakers": sorted(set(speakers[test_rows])),
               "n_fit": len(fit_rows), "n_test": len(test_rows), "network_ua": net.ua, "network_wa": net.wa,
               "network_valid_ua": net.valid_ua, "baselines": {k: asdict(v) for k, v in base.items()},
               **({"members": net.members} if net.members else {})}
        rows.append(row)
        what = f"seed {net.seed}" if config.protocol == "random" else f"fold {run} (test {','.join(row['test_speakers'])})"
        log(f"  {what}: network UA {row['network_ua']:.3f}  " +
            "  ".join(f"{k} UA {v.ua:.3f} (C {v.c:.0e}{'' if v.gamma is None else f', gamma {v.gamma:.1e}'})" for k, v in base.items()))
    mean = {name: float(np.mean([r["baselines"][name]["ua"] for r in rows])) for name in C_GRID}
    best = max(mean, key=lambda k: mean[k])
    diffs = [r["network_ua"] - r["baselines"][best]["ua"] for r in rows]
    diff, low, high = paired_interval(diffs)
    summary = {"lang": lang, "dataset": data.spec.dataset, "protocol": config.protocol, "features": features,
               "train_args": train_arguments(args, out), "runs": len(rows), "runs_planned": total,
               "speaker_norm": bool(config.train.speaker_norm),
               "network_ua": float(np.mean([r["network_ua"] for r in rows])),
               "network_ua_std": float(np.std([r["network_ua"] for r in rows], ddof=1)) if len(rows) > 1 else 0.0,
               "baseline_ua": mean, "baseline": best, "diff": diff, "ci_low": low, "ci_high": high,
               "seconds": {"network": round(network_seconds, 1), "baselines": round(time.perf_counter() - start, 1)},
               "per_run": rows, "network_metrics": str(Path(config.out) / "metrics.json")}
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").write_text(json.dumps(summary, indent=2, default=float))
    partial = f" (of {total} planned: partial)" if len(rows) < total else ""
    log(f"{lang} ({data.spec.dataset}), {config.protocol} protocol, {len(rows)} runs{partial}, features {'+'.join(features)}: "
        f"network UA {summary['network_ua']:.3f} +- {summary['network_ua_std']:.3f}; " +
        "; ".join(f"{k} {v:.3f}" for k, v in mean.items()) +
        f"; network - {best}: {diff:+.3f} [95% CI {low:+.3f}, {high:+.3f}]")
    if all("members" in r for r in rows):  # an ensemble: its members alone on the same runs, and their weights
        summary["members"] = members_summary(rows)
        log("ensemble members (mean over runs): " + "; ".join(
            f"{m} weight {v['weight']:.2f}, test UA {v['test_ua']:.3f}" for m, v in summary["members"].items()))
        (out / "result.json").write_text(json.dumps(summary, indent=2, default=float))
    log(result_line(lang, config.protocol, summary["network_ua"], mean[best], best, diff, low, high, len(rows)))
    return summary


def members_summary(rows: Sequence[dict]) -> dict[str, dict]:
    """The mean over runs of each ensemble member's weight, validation and test UA (``per_run`` rows)."""
    names = sorted(rows[0]["members"], key=lambda m: (m != "single", m))  # the network first
    return {m: {k: float(np.mean([r["members"][m][k] for r in rows])) for k in ("weight", "valid_ua", "test_ua")}
            for m in names}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--domains", required=True, help="one language code (de, it, ...) or LANG=DATASET, as for train")
    p.add_argument("--features", default=None, help="comma-separated, e.g. mfcc,ge2e,byol [default: every stored feature]")
    p.add_argument("--protocol", choices=["random", "speaker"], default="random")
    p.add_argument("--seeds", type=int, default=5, help="runs of the random protocol [default: 5]")
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--folds", type=int, default=None, help="speaker protocol: speaker folds [default: one per speaker]")
    p.add_argument("--features-dir", default="features")
    p.add_argument("--train-args", default="", help='extra train options for the network, e.g. "--preset tuned --refit"')
    p.add_argument("--out", default=None, help="output folder [default: runs/vs_baselines/<domains>_<protocol>]")
    p.add_argument("--finished-only", action="store_true",
                   help="train nothing: compare on the network runs already finished in OUT/network (while or after "
                        "another vs_baselines trains them); the RESULT line's runs= says how many")
    return p


def attach_option_values(argv: Sequence[str], options: Sequence[str] = ("--train-args",)) -> list[str]:
    """``--train-args --refit`` -> ``--train-args=--refit``: argparse takes a value that starts with ``-`` for an
    option of its own, so the documented ``--train-args "--refit"`` would stop with "expected one argument"."""
    out, argv = [], list(argv)
    i = 0
    while i < len(argv):
        if argv[i] in options and i + 1 < len(argv):
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


def main(argv: Sequence[str] | None = None) -> dict:
    p = parser()
    args = p.parse_args(attach_option_values(sys.argv[1:] if argv is None else argv))
    if args.seeds < 1 or args.first_seed < 0:
        p.error("--seeds must be >= 1 and --first-seed >= 0")
    try:
        return compare(args)
    except UsageProblem as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    except SerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(getattr(exc, "exit_code", EXIT_DATA))


if __name__ == "__main__":
    main()
