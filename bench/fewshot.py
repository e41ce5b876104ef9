"""Few-shot transfer to a language with K labelled utterances per emotion: linear and prototype methods on pooled
statistics, each against single (the target's K shots alone), paired by run.

    python bench/fewshot.py --features-dir features --out runs/fewshot --network runs/fewshot_net \
        --transfer-net runs/fewshot_transfer                                                      # resumable
    python bench/fewshot.py --out runs/fewshot --network runs/fewshot_net --transfer-net runs/fewshot_transfer \
        --report fewshot.md                                                                       # tables, plot
    python bench/fewshot.py --out runs/report --also bench/results/fewshot_2026-12-06c.jsonl \
        --report fewshot.md                                        # a report from the records archived with another

The protocol is the low-resource one of ``train --learning-curve``: at K the target contributes K labelled
utterances per emotion of its training split (:func:`train.protocol.few_shot`, drawn with the run's seed, the same
draw for every method of a run), to fitting and choosing together; its validation split is never used; its test
split is the one of the run (random protocol: the split of seed s; speaker protocol: fold f, test speakers unseen).
Every method may use the unlabelled audio features of the target's training split (standardisation statistics;
the ``self_*`` methods also label them themselves) and every labelled utterance of the training and validation
splits of the source languages.

Input: :func:`train.pooling.pooled_features` of the features (mean/std of frames and deltas; embeddings as
they are), standardised per corpus with the mean and std of that corpus's training-split rows (``z``; labels not
used), or per speaker (``spk``; labels not used): under the random protocol with the statistics of the speaker's
training-split rows (every test speaker has some); under the speaker protocol, whose test speakers have none,
with the statistics of all of the speaker's rows, i.e. a test speaker's own unlabelled test audio (transductive,
as ``predict --speakers`` with a head trained with ``--speaker-norm``).

Methods (C grid of the inner CV: :data:`C_GRID`; ``CV`` = stratified folds inside the K shots only):

- ``single_logreg``, ``single_linsvm``: ``train --model logreg|linsvm`` on the K shots (its own scaler fitted on
  the shots, C by CV inside them; :func:`train.pooled_heads.select_head`);
- ``single_net``: the network (``train --few-shot T=K``, fixed recipe: the configured epochs, the last), with
  ``--network DIR``: its runs are trained there before the linear methods (:func:`network_single`), and read by
  ``--report ... --network DIR`` (:func:`network_records`);
- with ``--network DIR``, the :data:`ENSEMBLES`: ``net_self_spk`` (no other language), ``net_self_pooled_spk`` and
  ``net_self_pooled``, the mean of single_net's test probabilities and those of ``self_spk``,
  ``self_pooled_spk`` or ``self_pooled`` (equal weights, fixed in advance). Added after the study of 2026-12-06.
  ``net_self_pooled_spk`` and ``net_self_pooled`` are what ``train --transfer-to`` fits with and without
  ``--speaker-norm``;
- ``single_z``: logistic regression on the ``z`` shots, C by CV; ``single_spk``: the same on ``spk``;
- ``proto_z``, ``proto_spk``: nearest class mean of the shots (Euclidean);
- ``zeroshot``: logistic regression on the sources' labelled rows, argmax over the target's emotions (emotions
  no source has are never predicted);
- ``stack``: logistic regression on the shots' ``z`` features plus the source model's decision values (x 3), C by CV;
- ``pooled_c<C>``: one logistic regression on all languages' ``z`` rows (the sources' labelled rows and the K
  shots), fixed C, the shots weighted up to weigh as much as all source rows together, argmax over the target's
  emotions: the fit of ``train --transfer-to`` (:func:`train.transfer.fit_union`); ``pooled_spk``: the same on
  ``spk`` (C 0.1);
- ``self_z``, ``self_spk`` (no other language) and ``self_pooled``, ``self_pooled_spk`` (``pooled_c0.01`` and
  ``pooled_spk``): the same models self-trained on the target's training rows that are not shots, without their
  labels (:func:`train.transfer.self_train`, rounds :data:`train.transfer.SELF_ROUNDS`, fixed in advance; the
  single models keep the C of their shots' CV). ``self_pooled_spk`` is the head of ``train --transfer-to
  --speaker-norm`` (alone: ``--model logreg``), which standardises each speaker with all of its utterances under
  both protocols and then each corpus with its training statistics;
- ``cv_spk``: ``self_pooled_spk`` or ``self_spk`` (with or without the other languages), whichever has the better
  UA of out-of-fold predictions inside the shots (:func:`shots_choice`, the two models fitted without self-training;
  ties: ``self_pooled_spk``); each run's pick is recorded (``picked``). Added after the study of 2026-12-06 had
  shown German losing from its sources at K = 10;
- with ``--multidomain DIR``, the paper's five multi-domain models trained on the three languages with the
  target's K shots (``md_base``, ``md_sb``, ``md_omoe``, ``md_mmoe``, ``md_nas``): the learning curve of ``train
  --learning-curve T`` with the study's seeds or folds (:func:`multidomain_curves`), its epoch chosen on the
  sources' validation splits; its ``single`` runs are the study's ``single_net`` runs (the same splits and draws;
  the report checks it); ``--models`` trains only the models it names (the curve's table then has only those; the
  report reads every finished run); ``--first-seed S --seeds N`` trains the random protocol's seeds S .. S+N-1
  only (into a folder of its own; the report joins the earlier seeds' records given with ``--also``). No
  pseudo-target runs: reported beside the choice, not among its candidates;
- with ``--transfer-net DIR``, the network transfer methods (:func:`network_transfer`), built on one source model
  per target T (``base`` with the auxiliary loss, trained on the two other languages: :func:`source_config`):
  ``adapt_net``, that model adapted on T's K shots alone (``train --init-from``, fixed recipe :data:`ADAPT_LR`,
  :data:`ADAPT_EPOCHS`); ``proto_net``, the nearest class mean of the shots in its representation (cosine);
  ``head_net``, logistic regression on that representation, C by CV inside the shots. They have no pseudo-target
  runs, so they are reported beside the method choice, not among its candidates.

Every part of the study runs one after the other in this process, or as Dask tasks with ``--workers N`` (a
LocalCluster) or ``--scheduler ADDRESS`` (a cluster): the linear methods one task per target, sources and seed or
fold (:func:`study`); ``--network``, ``--transfer-net`` (its source models, then its adapt_net configurations) and
``--multidomain`` one ``train`` configuration per language, K and model, with all its seeds or folds
(:func:`run_cells`).

Choosing the transfer method without the target: for a target T with sources A and B, each method is also run with
A as a pseudo-target (B its only source) and B as a pseudo-target (A its only source), tested on A's and B's test
splits; the method with the largest mean gain there over the best single-language method (of :data:`SINGLE`, by
mean UA per pseudo-target and K, single_net included: a language's network runs serve its pseudo-target runs,
:func:`with_pseudo_single_net`; over both pseudo-targets, both K and all seeds) is T's transfer method. The
method of the tables is one for all targets (:func:`shared_method`): the largest mean of the targets' gains.
``RESULTS`` holds one JSON line per (protocol, target, sources, K, run, method).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np

from sercore.errors import EXIT_PARTIAL
from train.metrics import paired_interval
from train.protocol import split_key
from train.scaling import speaker_standardised, standardise
from train.transfer import SPEAKER_TRANSFER_C, TRANSFER_C, self_train

C_GRID = (0.001, 0.01, 0.1, 1.0, 10.0)
POOLED = {"pooled_c0.01": (0.01, "bal"), "pooled_c0.1": (0.1, "bal")}
SINGLE = ("single_logreg", "single_linsvm", "single_net", "single_z", "single_spk", "proto_z", "proto_spk", "self_z",
          "self_spk", "net_self_spk")
#: With ``--network``: each of these is the mean of single_net's test probabilities and those of the named head
#: (softmax of its decision values over the target's emotions), equal weights fixed in advance (no target data is
#: left to weigh or calibrate with). ``net_self_spk`` uses no other language; the other two are transfer methods.
ENSEMBLES = {"net_self_spk": "self_spk", "net_self_pooled_spk": "self_pooled_spk", "net_self_pooled": "self_pooled"}
REFERENCE = "single_logreg"
#: "single" of the comparison: the best (by mean test UA, which favours it) of train's models on the K shots alone:
#: its heads and, where its runs are given (``--network``), the network.
HEADS = ("single_logreg", "single_linsvm", "single_net")
LANGUAGES = ("de", "it", "en")
#: The network transfer methods of ``--transfer-net`` (:func:`network_transfer`).
NETWORK_TRANSFER = ("adapt_net", "proto_net", "head_net")
#: The multi-domain models of ``--multidomain`` (:func:`multidomain_curves`): method ``md_<model>``.
MULTIDOMAIN = ("base", "sb", "omoe", "mmoe", "nas")
#: The methods reported beside the choice (no pseudo-target runs), by family: tables and :func:`plot_beside`.
BESIDE = {"The network transfer methods": NETWORK_TRANSFER,
          "The multi-domain models trained with the K shots": tuple(f"md_{m}" for m in MULTIDOMAIN)}
FEATURES = ("mfcc", "ge2e", "byol")


# ------------------------------------------------------------------------------------------------ the data


def load(features_dir: str, features: Sequence[str], cache: Path) -> dict:
    """Per language: pooled features (n, dim), emotions, speakers, utt_ids, store splits and its DomainData."""
    from train.config import ExperimentConfig
    from train.repeated_runs import load_domains
    from train.pooling import pooled_features

    config = ExperimentConfig(domains=list(LANGUAGES), features=list(features), features_dir=features_dir)
    domain_data, _ = load_domains(config)
    out = {}
    for data in domain_data:
        lang = data.spec.language
        path = cache / f"pooled_{lang}_{'-'.join(features)}.npy"
        if path.exists():
            x = np.load(path)
        else:
            x = pooled_features(data, list(features))
            cache.mkdir(parents=True, exist_ok=True)
            np.save(path, x)
        out[lang] = {"x": x.astype(np.float64), "emotions": np.array(data.emotions), "speakers": np.array(data.speakers),
                     "classes": list(data.classes), "data": data}
    return out


def split(lang_data: dict, protocol: str, run: int, folds: int) -> dict[str, np.ndarray]:
    from train.protocol import draw_split, split_indices

    idx = split_indices(draw_split(lang_data["data"], protocol, run, folds if protocol == "speaker" else None))
    return {k: np.array(v, dtype=np.int64) for k, v in idx.items()}


def standardised(x: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """x standardised with the mean and std of ``rows`` (unlabelled), as ``train --transfer-to`` does."""
    return standardise(x, x[rows])[0]


# ------------------------------------------------------------------------------------------------ the methods


def ua(y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str]) -> float:
    """Unweighted accuracy over ``classes`` (the target's emotions; a class never predicted counts 0)."""
    return float(np.mean([np.mean(y_pred[y_true == c] == c) for c in classes if (y_true == c).any()]))


def logreg(x, y, c):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return LogisticRegression(C=c, max_iter=500).fit(x, y)


def restricted_predict(model, x: np.ndarray, classes: Sequence[str]) -> np.ndarray:
    """Argmax of the decision values over the target's ``classes`` that the model knows."""
    known = [i for i, c in enumerate(model.classes_) if c in set(classes)]
    d = np.asarray(model.decision_function(x))
    return model.classes_[known][d[:, known].argmax(1)]


def class_probabilities(model, x: np.ndarray, classes: Sequence[str]) -> np.ndarray:
    """(n, len(classes)) probabilities over the target's ``classes``, in that order: the softmax of the model's
    decision values over those it knows (as :func:`restricted_predict` and self-training rank them); 0 for the others."""
    from train.calibration import apply_temperature

    known = [c for c in classes if c in set(model.classes_)]
    d = np.asarray(model.decision_function(x))[:, [list(model.classes_).index(c) for c in known]]
    out = np.zeros((len(x), len(classes)))
    out[:, [list(classes).index(c) for c in known]] = apply_temperature(d, 1.0)
    return out


def cv_c(x: np.ndarray, y: np.ndarray, seed: int) -> float:
    """C of :data:`C_GRID` with the best mean UA of stratified CV inside (x, y) (ties: the smaller C)."""
    from sklearn.model_selection import StratifiedKFold

    _, counts = np.unique(y, return_counts=True)
    folds = StratifiedKFold(n_splits=min(5, int(counts.min())), shuffle=True, random_state=seed)
    scores = np.zeros(len(C_GRID))
    for fit, held in folds.split(x, y):
        for j, c in enumerate(C_GRID):
            scores[j] += ua(y[held], logreg(x[fit], y[fit], c).predict(x[held]), np.unique(y))
    return C_GRID[int(np.argmax(scores))]


def shots_choice(fits: dict, x: np.ndarray, y: np.ndarray, classes: Sequence[str], seed: int) -> str:
    """The name of ``fits`` (name -> ``fit(x, y)``, a model) whose out-of-fold predictions inside the shots
    (x, y) have the best UA over ``classes``: stratified CV, at most 5 folds, the same folds for every fit (ties:
    the first name). Only the shots' labels are read."""
    from sklearn.model_selection import StratifiedKFold

    _, counts = np.unique(y, return_counts=True)
    folds = StratifiedKFold(n_splits=min(5, int(counts.min())), shuffle=True, random_state=seed)
    predicted = {name: np.empty(len(y), dtype=y.dtype) for name in fits}
    for fit_rows, held in folds.split(x, y):
        for name, fit in fits.items():
            predicted[name][held] = restricted_predict(fit(x[fit_rows], y[fit_rows]), x[held], classes)
    scores = {name: ua(y, p, classes) for name, p in predicted.items()}
    return max(scores, key=scores.get)  # the first of the best


def head_ua(kind: str, x_shots, y_shots, x_test, y_test, classes, seed: int) -> float:
    from train.pooled_heads import HeadConfig, select_head

    index = {c: i for i, c in enumerate(classes)}
    fit = select_head(HeadConfig(kind), x_shots, np.array([index[e] for e in y_shots]), seed=seed)
    return ua(np.array([index[e] for e in y_test]), fit.decision(x_test).argmax(1), range(len(classes)))


def prototypes(x_shots, y_shots, x_test, classes) -> np.ndarray:
    means = np.stack([x_shots[y_shots == c].mean(0) for c in classes])
    d = ((x_test[:, None, :] - means[None]) ** 2).sum(-1)
    return np.array(classes)[d.argmin(1)]


def run_methods(target: str, sources: Sequence[str], langs: dict, protocol: str, run: int, shots_k: Sequence[int],
                folds: int, spk: bool, network: Path | None = None) -> dict[int, dict[str, dict]]:
    """At each K of ``shots_k``, for one run (a seed, or a fold): ``ua``, every method's target test UA, and
    ``picked``, what ``cv_spk`` picked; ``spk``: also the methods on per-speaker standardised features;
    ``network``: the folder of single_net's runs (:func:`network_single`), for the :data:`ENSEMBLES`."""
    from train.protocol import few_shot
    from train.transfer import fit_union

    t = langs[target]
    idx_t = split(t, protocol, run, folds)
    classes = t["classes"]
    z = {target: standardised(t["x"], idx_t["train"])}
    s_rows = {}
    for s in sources:
        idx = split(langs[s], protocol, run, folds)
        s_rows[s] = np.concatenate([idx["train"], idx["valid"]])
        z[s] = standardised(langs[s]["x"], idx["train"])
    zs = np.concatenate([z[s][s_rows[s]] for s in sources])
    ys = np.concatenate([langs[s]["emotions"][s_rows[s]] for s in sources])
    sp = {}
    if spk:  # random: each speaker's training rows; speaker: all of a speaker's rows (test speakers have no other)
        stats = lambda idx: idx["train"] if protocol == "random" else None  # noqa: E731
        sp = {target: speaker_standardised(t["x"], t["speakers"], stats(idx_t))}
        for s in sources:
            sp[s] = speaker_standardised(langs[s]["x"], langs[s]["speakers"], stats(split(langs[s], protocol, run, folds)))
        sps = np.concatenate([sp[s][s_rows[s]] for s in sources])
    test = idx_t["test"]
    y_test = t["emotions"][test]
    source_model = logreg(zs, ys, 0.1)
    zero = ua(y_test, restricted_predict(source_model, z[target][test], classes), classes)
    out = {}
    for k in shots_k:
        shots = np.array(few_shot(idx_t["train"].tolist(), list(t["emotions"]), k, run), dtype=np.int64)
        y_sh = t["emotions"][shots]
        r: dict[str, float] = {"zeroshot": zero}
        picked: dict[str, str] = {}
        probs: dict[str, np.ndarray] = {}  # the heads of ENSEMBLES: (test rows, classes)
        r["single_logreg"] = head_ua("logreg", t["x"][shots], y_sh, t["x"][test], y_test, classes, run)
        r["single_linsvm"] = head_ua("linsvm", t["x"][shots], y_sh, t["x"][test], y_test, classes, run)
        zt = z[target]
        pool = np.setdiff1d(idx_t["train"], shots)  # the target's unlabelled training rows
        c = cv_c(zt[shots], y_sh, run)
        r["single_z"] = ua(y_test, logreg(zt[shots], y_sh, c).predict(zt[test]), classes)
        model = self_train(lambda x, y: logreg(x, y, c), zt[shots], y_sh, zt[pool], classes)  # noqa: B023
        r["self_z"] = ua(y_test, restricted_predict(model, zt[test], classes), classes)
        r["proto_z"] = ua(y_test, prototypes(zt[shots], y_sh, zt[test], classes), classes)
        # stack: the source model's decision values as extra inputs (scaled to matter beside 928 z-features)
        extra = lambda rows: np.asarray(source_model.decision_function(zt[rows])) * 3.0  # noqa: E731
        xs_sh, xs_te = np.hstack([zt[shots], extra(shots)]), np.hstack([zt[test], extra(test)])
        c = cv_c(xs_sh, y_sh, run)
        r["stack"] = ua(y_test, logreg(xs_sh, y_sh, c).predict(xs_te), classes)
        for name, (c, _) in POOLED.items():  # train --transfer-to's union fit (train.transfer.fit_union)
            model = fit_union(zt[shots], y_sh, zs, ys, c)
            r[name] = ua(y_test, restricted_predict(model, zt[test], classes), classes)
        model = self_train(lambda x, y: fit_union(x, y, zs, ys, TRANSFER_C), zt[shots], y_sh, zt[pool], classes)
        r["self_pooled"] = ua(y_test, restricted_predict(model, zt[test], classes), classes)
        probs["self_pooled"] = class_probabilities(model, zt[test], classes)
        if spk:
            st = sp[target]
            c = cv_c(st[shots], y_sh, run)
            r["single_spk"] = ua(y_test, logreg(st[shots], y_sh, c).predict(st[test]), classes)
            r["proto_spk"] = ua(y_test, prototypes(st[shots], y_sh, st[test], classes), classes)
            model = self_train(lambda x, y: logreg(x, y, c), st[shots], y_sh, st[pool], classes)  # noqa: B023
            r["self_spk"] = ua(y_test, restricted_predict(model, st[test], classes), classes)
            probs["self_spk"] = class_probabilities(model, st[test], classes)
            model = fit_union(st[shots], y_sh, sps, ys, SPEAKER_TRANSFER_C)
            r["pooled_spk"] = ua(y_test, restricted_predict(model, st[test], classes), classes)
            model = self_train(lambda x, y: fit_union(x, y, sps, ys, SPEAKER_TRANSFER_C), st[shots], y_sh, st[pool], classes)
            r["self_pooled_spk"] = ua(y_test, restricted_predict(model, st[test], classes), classes)
            probs["self_pooled_spk"] = class_probabilities(model, st[test], classes)
            # with or without the other languages, as CV inside the shots says (fits without self-training)
            pick = shots_choice({"self_pooled_spk": lambda x, y: fit_union(x, y, sps, ys, SPEAKER_TRANSFER_C),
                                 "self_spk": lambda x, y: logreg(x, y, c)}, st[shots], y_sh, classes, run)  # noqa: B023
            r["cv_spk"] = r[pick]
            picked["cv_spk"] = pick
        if network is not None:
            net = network_probabilities(network, protocol, target, k, run, [t["data"].utt_ids[i] for i in test], classes)
            for name, head in ENSEMBLES.items():
                if head in probs:
                    r[name] = ua(y_test, np.array(classes)[((net + probs[head]) / 2).argmax(1)], classes)
        out[k] = {"ua": r, "picked": picked}
    return out


# ------------------------------------------------------------------------------------------------ the study


def configurations(targets: Sequence[str]) -> list[tuple[str, tuple[str, ...], str]]:
    """(target, sources, role): each target with the other two languages, and each of its pseudo-targets."""
    out = []
    for t in targets:
        others = tuple(x for x in LANGUAGES if x != t)
        out.append((t, others, "target"))
        for p in others:
            out.append((p, tuple(x for x in others if x != p), f"pseudo for {t}"))
    seen, unique = set(), []
    for t, s, role in out:  # a pseudo-pair serves one target only (the 6 ordered pairs are distinct)
        if (t, s) not in seen:
            seen.add((t, s))
            unique.append((t, s, role))
    return unique


class StudyRun(NamedTuple):
    """One run of the study: a target with its sources, a seed (random protocol) or fold (speaker), every K."""

    protocol: str
    target: str
    sources: tuple[str, ...]
    run: int
    shots: tuple[int, ...]

    def __str__(self) -> str:
        return f"{self.protocol} {self.target} <- {','.join(self.sources)} run {self.run}"


def study(args, log=print) -> int:
    """Every run of the plan not yet in ``OUT/results.jsonl``, appended there as it finishes (resumable). A run
    recorded by an earlier version of this script is not redone, even if methods were added since: use a new
    ``--out``. With ``args.workers`` > 0 or ``args.scheduler``, each run (a target, its sources and a seed or fold;
    every K and method) is a Dask task on a LocalCluster of that many workers or on the cluster at the scheduler
    (the features sent to each worker once). Returns the exit status: 0, or
    :data:`~sercore.errors.EXIT_PARTIAL` when a run failed on a worker (the others are kept)."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = out / "results.jsonl"
    done = set()
    if results.exists():
        for line in results.read_text().splitlines():
            rec = json.loads(line)
            done.add((rec["protocol"], rec["target"], ",".join(rec["sources"]), rec["run"]))
    langs = load(args.features_dir, args.features, out / "cache")
    plan = []  # seed-major: an interrupted study has every configuration at the seeds it reached
    configs = configurations(args.targets)
    for run in range(args.first_seed, args.first_seed + args.seeds) if "random" in args.protocols else []:
        plan += [StudyRun("random", t, sources, run, tuple(args.shots)) for t, sources, role in configs
                 if role == "target" or run < args.pseudo_seeds]
    for fold in range(args.folds) if "speaker" in args.protocols else []:
        plan += [StudyRun("speaker", t, sources, fold, (args.speaker_shots,)) for t, sources, role in configs
                 if role == "target"]
    todo = [r for r in plan if (r.protocol, r.target, ",".join(r.sources), r.run) not in done]
    network = Path(args.network).resolve() if args.network else None
    count, start = len(plan) - len(todo), time.perf_counter()

    def write(r: StudyRun, res: dict, seconds: float) -> None:
        nonlocal count
        with results.open("a") as f:
            for k, methods in res.items():
                f.write(json.dumps({"protocol": r.protocol, "target": r.target, "sources": list(r.sources),
                                    "run": r.run, "k": k, **methods}) + "\n")
        count += 1
        log(f"[{count}/{len(plan)}] {r}: {seconds:.1f} s (total {time.perf_counter() - start:.0f} s)")

    if not (args.workers or args.scheduler):
        for r in todo:
            t0 = time.perf_counter()
            write(r, run_methods(r.target, r.sources, langs, r.protocol, r.run, r.shots, args.folds, True, network),
                  time.perf_counter() - t0)
        return 0
    if not todo:
        return 0
    from dask.distributed import as_completed

    from sercore.cluster import dask_client

    failed = []
    with dask_client(args.workers, args.scheduler, echo=log) as client:
        [shared] = client.scatter([langs], broadcast=True)  # one object (a dict would be scattered under its keys)
        futures = {client.submit(methods_task, r, shared, args.folds, network, pure=False): r for r in todo}
        for future in as_completed(futures):
            r = futures[future]
            try:
                res, seconds = future.result()
            except StudyInputError as exc:  # one line naming the file, as without workers
                raise SystemExit(str(exc)) from None
            except Exception as exc:  # the worker died, or the task could not run
                log(f"FAILED {r}: {type(exc).__name__}: {exc}")
                failed.append(r)
                continue
            write(r, res, seconds)
            future.release()
    return EXIT_PARTIAL if failed else 0


class StudyInputError(ValueError):
    """What stops the study with one line (a run it reads is missing or is not the study's), raised on a worker."""


def methods_task(r: StudyRun, langs: dict, folds: int, network: Path | None) -> tuple[dict, float]:
    """:func:`run_methods` of ``r`` as a Dask task: its result and seconds; the SystemExit of a bad input becomes a
    :class:`StudyInputError` (a SystemExit would stop the worker process instead of failing the task)."""
    t0 = time.perf_counter()
    try:
        res = run_methods(r.target, r.sources, langs, r.protocol, r.run, r.shots, folds, True, network)
    except SystemExit as exc:
        raise StudyInputError(str(exc)) from None
    return res, time.perf_counter() - t0


def language_specs(args) -> list[str]:
    """The ``--domains`` of the study's three-language runs: each of :data:`LANGUAGES` with its stores."""
    from train.domains import resolve_domain

    return [str(resolve_domain(x, args.features_dir)) for x in LANGUAGES]


def split_runs(args, protocol: str) -> dict:
    """``build_config``'s settings for the study's runs of ``protocol``: its seeds (random) or its folds (speaker)."""
    if protocol == "random":
        return {"seeds": args.seeds, "first_seed": args.first_seed}
    return {"protocol": "speaker", "folds": args.folds}


def network_single(args, log=print) -> int:
    """single_net's runs: ``train --domains T=DATASET --few-shot T=K`` (the network on the K shots alone, its fixed
    recipe; the study's splits and draws) for every language of the study (targets and pseudo-targets) and K, into
    ``<args.network>/<protocol>_<target>_k<K>``; resumable (a finished run is not fitted again). With
    ``args.workers`` > 0 or ``args.scheduler``, one Dask task per language, protocol and K (:func:`run_cells`).
    Returns the exit status: 0, or :data:`~sercore.errors.EXIT_PARTIAL` when a configuration failed there."""
    from train.config import build_config
    from train.domains import resolve_domain

    languages = [x for x in LANGUAGES if any(x == t for t, _, _ in configurations(args.targets))]  # with pseudo-targets
    jobs = [("random", t, k) for t in languages for k in args.shots] if "random" in args.protocols else []
    jobs += [("speaker", t, args.speaker_shots) for t in args.targets] if "speaker" in args.protocols else []
    configs = [(f"single_net {protocol} {t} K = {k}",
                build_config([str(resolve_domain(t, args.features_dir))], features=list(args.features),
                             features_dir=str(args.features_dir), few_shot={t: k}, save_checkpoints=False,
                             out=str(Path(args.network) / f"{protocol}_{t}_k{k}"), train={"progress": False},
                             **split_runs(args, protocol)))
               for protocol, t, k in jobs]
    return EXIT_PARTIAL if run_configs(configs, args, log) else 0


def run_configs(configs: list[tuple[str, object]], args, log=print) -> set[str]:
    """Run the named ``train`` configurations ``configs``: one after the other in this process (resumable: a
    finished run is not fitted again), or with ``args.workers`` > 0 or ``args.scheduler`` as Dask tasks
    (:func:`run_cells`). Returns the names of those that failed on the workers (in this process a failure raises)."""
    from train.repeated_runs import run_experiment

    if args.workers or args.scheduler:
        failed = run_cells([as_cell(name, config) for name, config in configs], args.workers, args.scheduler, log)
        if failed:
            log(f"{len(failed)} configuration(s) failed: {', '.join(sorted(failed))}")
        return failed
    for name, config in configs:
        start = time.perf_counter()
        run_experiment(config, log=lambda s: None)
        log(f"{name}: {time.perf_counter() - start:.0f} s -> {config.out}")
    return set()


def as_cell(name: str, config):
    """``config`` as a cell of the experiment grid (:class:`train.studies.grid.Cell`), its run folder and stores
    folder absolute (a cluster's workers run it); done (:func:`train.studies.grid.cell_state`) when its
    metrics.json holds every language and all its seeds or folds, fitted under this configuration."""
    from dataclasses import replace

    from train.config import DomainSpec
    from train.studies.grid import Cell

    config = replace(config, out=str(Path(config.out).resolve()), features_dir=str(Path(config.features_dir).resolve()))
    languages = tuple(DomainSpec.parse(d).language for d in config.domains)
    return Cell(name, config, languages, config.seeds if config.protocol == "random" else config.folds)


def run_cells(cells: list, workers: int, scheduler: str | None, log=print) -> set[str]:
    """Run the ``train`` configurations ``cells`` (:func:`as_cell`) not done yet as Dask tasks on a LocalCluster of
    ``workers`` processes or on the cluster at ``scheduler``, through the experiment grid's executor
    (:func:`train.studies.grid.execute_cells`); returns the names of those that failed (the others are kept)."""
    from train.studies.grid import cell_state, default_threads, execute_cells

    failed: set[str] = set()

    def report(r) -> None:
        log(f"{'ok    ' if r.ok else 'FAILED'} {r.name} ({r.seconds:.0f} s on {r.host})" + ("" if r.ok else f": {r.error}"))
        if not r.ok:
            failed.add(r.name)

    todo = [c for c in cells if cell_state(c) != "done"]
    log(f"{len(cells)} train configurations, {len(cells) - len(todo)} done already, {len(todo)} to run")
    if todo:
        execute_cells(todo, workers, scheduler, default_threads(workers, scheduler), in_process=False, gpu=False,
                      echo=log, report=report)
    return failed


# ------------------------------------------------------------------------------------------------ multi-domain models


def multidomain_curves(args, log=print) -> int:
    """The multi-domain models with the target's K shots: ``train --domains de,it,en --model base,sb,omoe,mmoe,nas
    --learning-curve T`` for every target, with the study's splits and K-shot draws: under the random protocol
    ``--shots K,... --seeds N`` into ``<args.multidomain>/<T>``, under the speaker protocol ``--shots <speaker
    shots> --protocol speaker --folds F`` into ``<args.multidomain>/speaker_<T>`` (the curve's folders
    ``k<K>/<model>``); resumable. Returns the exit status: 0, or :data:`~sercore.errors.EXIT_PARTIAL` when a piece
    failed on the Dask workers (its curve is not written; the other pieces and curves are kept).

    With ``args.workers`` > 0 or ``args.scheduler``, the curves' pieces (:func:`multidomain_cells`: one ``train``
    configuration per target, K and model, all its seeds or folds) first run as Dask tasks on a LocalCluster of
    that many workers or on the cluster at the scheduler (:func:`train.studies.grid.execute_cells`); each curve
    then finds its runs finished and only writes its table."""
    from train.studies.learning_curve import run_learning_curve

    curves = multidomain_plan(args)
    failed: set[str] = set()
    if args.workers or args.scheduler:
        cells = multidomain_cells(curves, args.models)
        failed = run_cells([c for pieces in cells.values() for c in pieces], args.workers, args.scheduler, log)
        curves = [(protocol, t, config, shots) for protocol, t, config, shots in curves
                  if not failed & {c.name for c in cells[config.out]}]  # a curve with a failed piece is not written
    for protocol, t, config, shots in curves:
        start = time.perf_counter()
        run_learning_curve(config, t, shots, args.models, log=lambda s: None)
        log(f"multi-domain models, {protocol} protocol, target {t}: {time.perf_counter() - start:.0f} s -> {config.out}")
    if failed:
        log(f"multi-domain models: the curves of the failed pieces ({', '.join(sorted(failed))}) are not written")
        return EXIT_PARTIAL
    return 0


def multidomain_plan(args) -> list[tuple[str, str, object, list[int]]]:
    """(protocol, target, the curve's configuration, its K) of every curve of :func:`multidomain_curves`."""
    from train.config import build_config

    specs = language_specs(args)
    jobs = [("random", t) for t in args.targets] if "random" in args.protocols else []
    jobs += [("speaker", t) for t in args.targets] if "speaker" in args.protocols else []
    plan = []
    for protocol, t in jobs:
        config = build_config(specs, model=MULTIDOMAIN[0], features=list(args.features), features_dir=str(args.features_dir),
                              save_checkpoints=False, out=str(Path(args.multidomain) / multidomain_folder(protocol, t)),
                              train={"progress": False}, **split_runs(args, protocol))
        plan.append((protocol, t, config, list(args.shots) if protocol == "random" else [args.speaker_shots]))
    return plan


def multidomain_cells(curves, models: Sequence[str]) -> dict[str, list]:
    """Every curve's pieces (:func:`train.studies.learning_curve.curve_pieces`) with ``models`` as cells of the
    experiment grid (:func:`as_cell`), per curve folder."""
    from train.studies.learning_curve import curve_pieces

    return {config.out: [as_cell(f"md {protocol} {t} k{k} {model}", piece)
                         for k, model, piece in curve_pieces(config, t, shots, models)]
            for protocol, t, config, shots in curves}


def multidomain_folder(protocol: str, target: str) -> str:
    """The curve's folder of ``target`` under ``protocol`` in ``--multidomain DIR``."""
    return target if protocol == "random" else f"{protocol}_{target}"


def multidomain_records(folder: Path) -> list[dict]:
    """``md_<model>`` from every finished run of the curves under ``folder`` (``<T>/k<K>/<model>/runs/run<r>.json``
    and ``speaker_<T>/...``, :func:`multidomain_curves`): the target's test UA over the emotions its test split
    has; and ``curve_single``, the curve's own single runs, which must equal the study's ``single_net``
    (:func:`check_curve_single`). A record's run is the study's: the run's split key (:func:`train.protocol.split_key`:
    the seed under the random protocol, the curve's ``first_seed`` plus its run number; the fold under the speaker
    protocol, whose curves start from seed 0)."""
    folders = {multidomain_folder(p, t): (p, t) for p in ("random", "speaker") for t in LANGUAGES}
    out = []
    for path in sorted(Path(folder).glob("*/k*/*/runs/run*.json")):
        name, shot, model = path.parts[-5], path.parts[-4], path.parts[-3]
        if name not in folders or not re.fullmatch(r"k\d+", shot) or model not in (*MULTIDOMAIN, "single"):
            continue
        (protocol, target), k, record = folders[name], int(shot[1:]), json.loads(path.read_text())
        config = record["fingerprint"]["config"]
        languages = sorted(x.split("=")[0] for x in config["domains"])
        first = config["first_seed"] if protocol == "random" else 0
        expected = (["de", "en", "it"] if model != "single" else [target], {target: k}, protocol, first, model)
        if (languages, config["few_shot"], config["protocol"], config["first_seed"], config["model"]) != expected:
            raise ValueError(f"{path}: not a run of the learning curve of {target} at K = {k} with {model} "
                             f"(`train --domains de,it,en --learning-curve ...`, {protocol} protocol; its configuration "
                             "says otherwise)")
        out.append({"protocol": protocol, "target": target, "sources": [x for x in LANGUAGES if x != target],
                    "run": split_key(protocol, first, record["run"]), "k": k,
                    "ua": {"curve_single" if model == "single" else f"md_{model}": target_test_ua(record, target)}})
    return out


def single_net_ua(recs: list[dict]) -> dict[tuple, float]:
    """single_net's test UA of each target record (both other languages as sources), by (protocol, target, K, run)."""
    return {(r["protocol"], r["target"], r["k"], r["run"]): r["ua"]["single_net"] for r in recs
            if len(r["sources"]) == 2 and "single_net" in r["ua"]}


def check_curve_single(recs: list[dict], multidomain: list[dict]) -> list[dict]:
    """The multi-domain runs are paired with the study's only if the curve's single runs are ``single_net``'s runs
    (the same splits and draws): stop with one line where both exist and differ. Returns ``multidomain`` without
    the curve's single runs (``md_*`` only)."""
    net = single_net_ua(recs)
    for r in multidomain:
        key = (r["protocol"], r["target"], r["k"], r["run"])
        if "curve_single" in r["ua"] and key in net and abs(r["ua"]["curve_single"] - net[key]) > 1e-9:
            raise SystemExit(f"--multidomain: the curve's single run {r['run']} of {r['target']} at K = {r['k']} "
                             f"({r['protocol']} protocol) has UA "
                             f"{r['ua']['curve_single']:.4f}, single_net's {net[key]:.4f}: not the study's splits and "
                             "draws (other stores or seeds?)")
    return [r for r in multidomain if "curve_single" not in r["ua"]]


# ------------------------------------------------------------------------------------------------ network transfer

#: ``adapt_net``'s recipe, fixed in advance and not tuned on any language: every weight of the source model
#: (``--init-from``), a tenth of the default learning rate, this many epochs (each as long as a pass over the three
#: training splits, as every few-shot run of ``train``), the last one tested.
ADAPT_LR, ADAPT_EPOCHS = 1e-4, 5


def source_config(args, target: str):
    """The source model of ``target``: ``train --domains de,it,en --model base --few-shot T=0`` (seed 0), i.e. base
    with the contrastive auxiliary loss on the two other languages' training splits, its epoch chosen on their
    validation splits. No utterance of T reaches its weights (T's classes no source has stay untrained), so one
    source model serves every seed, fold and K of T. Trained into ``<args.transfer_net>/source_<T>``; its
    checkpoint: ``checkpoints/run0.pt`` there."""
    from train.config import build_config

    specs = language_specs(args)
    return build_config(specs, model="base", features=list(args.features), features_dir=str(args.features_dir),
                        few_shot={target: 0}, seeds=1, out=str(Path(args.transfer_net) / f"source_{target}"),
                        train={"progress": False})


def transfer_jobs(args) -> list[tuple[str, int, range]]:
    """(protocol, K, runs) of the network transfer methods, per target: the study's seeds at each K (random
    protocol) and its folds at the speaker protocol's K."""
    jobs = [("random", k, range(args.seeds)) for k in args.shots] if "random" in args.protocols else []
    return jobs + ([("speaker", args.speaker_shots, range(args.folds))] if "speaker" in args.protocols else [])


def adapt_config(args, target: str, protocol: str, k: int, checkpoint: Path):
    """``adapt_net``'s runs of ``target`` at K under ``protocol``: ``train --domains de,it,en --model base
    --few-shot T=K --few-shot A=0 --few-shot B=0 --init-from SOURCE --lr 1e-4 --epochs 5`` with the study's splits
    and draws, into ``<args.transfer_net>/<protocol>_<T>_k<K>``."""
    from train.config import build_config

    specs = language_specs(args)
    return build_config(specs, model="base", features=list(args.features), features_dir=str(args.features_dir),
                        few_shot={target: k, **{x: 0 for x in LANGUAGES if x != target}}, init_from=str(checkpoint),
                        train={"epochs": ADAPT_EPOCHS, "progress": False}, optimizer={"lr": ADAPT_LR},
                        save_checkpoints=False, out=str(Path(args.transfer_net) / f"{protocol}_{target}_k{k}"),
                        **split_runs(args, protocol))


def network_transfer(args, log=print) -> int:
    """The network transfer methods of every target T: its source model (:func:`source_config`); ``proto_net``
    and ``head_net`` on its representation (:func:`representation_methods`), into
    ``<args.transfer_net>/representations_<T>.jsonl``; ``adapt_net``, the source model adapted on T's K shots alone
    (:func:`adapt_config`). Resumable. With ``args.workers`` > 0 or ``args.scheduler``, the source models and then
    the adapt_net configurations run as Dask tasks (:func:`run_cells`; the representations, forward passes only,
    here). Returns the exit status: 0, or :data:`~sercore.errors.EXIT_PARTIAL` when a configuration failed there
    (a target whose source model failed is left out)."""

    folder = Path(args.transfer_net)
    folder.mkdir(parents=True, exist_ok=True)
    sources = {t: source_config(args, t) for t in args.targets}
    failed = run_configs([(f"source model {t}", config) for t, config in sources.items()], args, log)
    targets = [t for t in args.targets if f"source model {t}" not in failed]
    langs = None
    adapts = []
    for t in targets:
        checkpoint = Path(sources[t].out) / "checkpoints" / "run0.pt"
        path = folder / f"representations_{t}.jsonl"
        done = {(r["protocol"], r["k"], r["run"]) for r in records(path)}
        for protocol, k, runs in transfer_jobs(args):
            todo = [r for r in runs if (protocol, k, r) not in done]
            if todo:
                langs = langs or load(args.features_dir, args.features, Path(args.out) / "cache")
                with path.open("a") as f:
                    for run in todo:
                        ua_ = representation_methods(checkpoint, langs, t, protocol, run, k, args.folds)
                        f.write(json.dumps({"protocol": protocol, "target": t, "sources": [x for x in LANGUAGES if x != t],
                                            "run": run, "k": k, "ua": ua_}) + "\n")
            adapts.append((f"adapt_net {protocol} {t} K = {k}", adapt_config(args, t, protocol, k, checkpoint)))
    failed |= run_configs(adapts, args, log)
    return EXIT_PARTIAL if failed else 0


def representation_methods(checkpoint: Path, langs: dict, target: str, protocol: str, run: int, k: int,
                           folds: int) -> dict[str, float]:
    """The source model's representation r of T's utterances (its FeatureEncoders, experts and mean: what the
    auxiliary loss shaped), T's features standardised with its training split's statistics (no label), and on it:
    ``proto_net``, the nearest class mean of the K shots (cosine); ``head_net``, logistic regression on the shots'
    r (standardised with the shots' statistics), C by CV inside the shots. T's test UA of each."""
    import torch

    from train.config import ExperimentConfig
    from train.batch_limits import max_frames
    from train.dataset import FeatureDataset
    from train.fit_run import domain_info
    from train.models import build_model
    from train.network_trainer import Trainer
    from train.protocol import few_shot
    from train.scaling import FeatureScaler

    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    config = ExperimentConfig.from_dict({**state["config"], "few_shot": {}})  # no masked column: r is all we use
    order = [x.split("=")[0] for x in state["domains"]]
    domain_data = [langs[x]["data"] for x in order]
    features = list(state["features"])
    model = build_model(config.model, config, [domain_info(d, features) for d in domain_data])
    model.load_state_dict(state["model"])
    trainer = Trainer(model, config.train, [d.classes for d in domain_data], [0.0] * len(order), seed=run)
    data, d = langs[target]["data"], order.index(target)
    idx = split(langs[target], protocol, run, folds)
    shots = np.array(few_shot(idx["train"].tolist(), list(data.emotions), k, run), dtype=np.int64)
    scaler = FeatureScaler.fit(data, idx["train"].tolist())
    limit = max_frames(data.provenance, data.kinds, config.train.max_seconds)

    def represent(rows: np.ndarray) -> np.ndarray:
        evaluation = trainer.evaluate(FeatureDataset(data, rows.tolist(), data.classes, domain=d, scaler=scaler,
                                                     max_frames=limit))
        return evaluation.representations.astype(np.float64)

    r_shots, r_test = represent(shots), represent(idx["test"])
    y_shots, y_test = langs[target]["emotions"][shots], langs[target]["emotions"][idx["test"]]
    classes = langs[target]["classes"]
    unit = lambda r: r / np.maximum(np.linalg.norm(r, axis=1, keepdims=True), 1e-12)  # noqa: E731
    means = np.stack([unit(r_shots[y_shots == c]).mean(0) for c in classes])
    proto = np.array(classes)[(unit(r_test) @ unit(means).T).argmax(1)]
    z_shots, mean, std = standardise(r_shots, r_shots)
    c = cv_c(z_shots, y_shots, run)
    head = logreg(z_shots, y_shots, c).predict((r_test - mean) / std)
    return {"proto_net": ua(y_test, proto, classes), "head_net": ua(y_test, head, classes)}


def transfer_net_records(folder: Path) -> list[dict]:
    """``adapt_net`` from the run folders ``<protocol>_<T>_k<K>`` under ``folder`` (T's test UA over the emotions
    its test split has; the rows of the other languages left out), and the records of ``representations_*.jsonl``."""
    out = records(sorted(folder.glob("representations_*.jsonl")))
    for path, protocol, target, k, record in finished_runs(folder):
        config = record["fingerprint"]["config"]
        others = [x for x in LANGUAGES if x != target]
        if (config["protocol"], config["few_shot"], config["model"], config["first_seed"]) != (
                protocol, {target: k, **{x: 0 for x in others}}, "base", 0) or not config.get("init_from"):
            raise ValueError(f"{path}: not an adapt_net run of {target} at K = {k} under the {protocol} protocol "
                             "(its configuration says otherwise)")
        out.append({"protocol": protocol, "target": target, "sources": others, "run": record["run"], "k": k,
                    "ua": {"adapt_net": target_test_ua(record, target)}})
    return out


# ------------------------------------------------------------------------------------------------ the tables


def records(path: Path | Sequence[Path]) -> list[dict]:
    """The records of one or more results files; the methods of a (protocol, target, sources, K, run) seen in
    several are joined into one record (a method seen twice: its first value)."""
    out: dict[tuple, dict] = {}
    for p in [path] if isinstance(path, Path) else path:
        for line in p.read_text().splitlines() if p.exists() else []:
            if line.strip():
                r = json.loads(line)
                key = (r["protocol"], r["target"], tuple(r["sources"]), r["k"], r["run"])
                if key in out:
                    out[key]["ua"] = {**r["ua"], **out[key]["ua"]}
                    out[key]["picked"] = {**r.get("picked", {}), **out[key].get("picked", {})}
                else:
                    out[key] = r
    return list(out.values())


def network_records(folder: Path) -> list[dict]:
    """``single_net``: the network trained on the K shots alone, from ``train`` run folders named
    ``<protocol>_<target>_k<K>`` under ``folder`` (``train --domains T=DATASET --few-shot T=K``, ``--seeds 10`` or
    ``--protocol speaker --folds 6``: the same splits and K-shot draws as the study's run r); one record per
    finished run, with the target's test UA (over the emotions its test split has), sources: the other languages."""
    out = []
    for path, protocol, target, k, record in finished_runs(folder):
        check_single_net(path, record, protocol, target, k)
        out.append({"protocol": protocol, "target": target, "sources": [x for x in LANGUAGES if x != target],
                    "run": record["run"], "k": k, "ua": {"single_net": target_test_ua(record, target)}})
    return out


def with_pseudo_single_net(recs: list[dict]) -> list[dict]:
    """``recs`` with single_net also in each pseudo-target record (one source): the network on a language's K
    shots does not depend on the sources, so its run is the one of that language's record with both others as
    sources (:func:`network_records`), same protocol, K and run. The pseudo-target choice then compares with
    every single-language method, the network included."""
    net = single_net_ua(recs)
    out = []
    for r in recs:
        key = (r["protocol"], r["target"], r["k"], r["run"])
        if len(r["sources"]) == 1 and "single_net" not in r["ua"] and key in net:
            r = {**r, "ua": {**r["ua"], "single_net": net[key]}}
        out.append(r)
    return out


def check_single_net(path: Path, record: dict, protocol: str, target: str, k: int) -> None:
    config = record["fingerprint"]["config"]
    if (config["protocol"], config["few_shot"], config["first_seed"], config["model"]) != (protocol, {target: k}, 0, "single"):
        raise ValueError(f"{path}: not a run of `train --domains {target}=... --few-shot {target}={k}` under the "
                         f"{protocol} protocol from seed 0 (its configuration says otherwise)")


def network_probabilities(folder: Path, protocol: str, target: str, k: int, run: int, utt_ids: Sequence[str],
                          classes: Sequence[str]) -> np.ndarray:
    """single_net's test probabilities of run ``run`` (``<folder>/<protocol>_<target>_k<K>/runs/run<run>.json``),
    (len(utt_ids), len(classes)): rows in the order of ``utt_ids`` (the study's test rows), columns in the order
    of ``classes``. A missing run, or one tested on other utterances, stops the study (one line naming the file)."""
    path = Path(folder) / f"{protocol}_{target}_k{k}" / "runs" / f"run{run}.json"
    if not path.exists():
        raise SystemExit(f"{path}: single_net's run is missing (the ensembles need it; `--network` trains it first)")
    record = json.loads(path.read_text())
    check_single_net(path, record, protocol, target, k)
    test = record["test"]
    row = {u: i for i, u in enumerate(test["utt_ids"])}
    if sorted(row) != sorted(utt_ids):
        raise SystemExit(f"{path}: tested on other utterances than the study's run {run} (another split?)")
    order = test["scores"]["0"]["classes"]
    p = np.asarray(test["probabilities"], dtype=np.float64)
    return p[[row[u] for u in utt_ids]][:, [order.index(c) for c in classes]]


def finished_runs(folder: Path):
    """(path, protocol, target, K, record) of every finished run of the ``train`` run folders named
    ``<protocol>_<target>_k<K>`` under ``folder`` (``runs/run<k>.json``)."""
    for run_folder in sorted(Path(folder).iterdir()):
        name = re.fullmatch(r"(random|speaker)_([a-z]+)_k(\d+)", run_folder.name)
        if not name:
            continue
        protocol, target, k = name.group(1), name.group(2), int(name.group(3))
        for path in sorted((run_folder / "runs").glob("run*.json")):
            yield path, protocol, target, k, json.loads(path.read_text())


def target_test_ua(record: dict, target: str) -> float:
    """The target's test UA in a run record: its rows only (a multi-domain run tests every language), over the
    emotions its test split has."""
    languages = [x.split("=")[0] for x in record["fingerprint"]["config"]["domains"]]
    rows = np.array(record["test"]["domains"]) == languages.index(target)
    labels, predicted = np.array(record["test"]["labels"])[rows], np.array(record["test"]["predictions"])[rows]
    return ua(labels, predicted, sorted(set(labels.tolist())))


def with_every_head(recs: list[dict]) -> list[dict]:
    """The records of one group (protocol, target, K) that have every head of :data:`HEADS` that any of them has:
    single is chosen and compared on the same runs (the network's runs may be fewer while they are trained)."""
    heads = [h for h in HEADS if any(h in r["ua"] for r in recs)]
    return [r for r in recs if all(h in r["ua"] for h in heads)]


def paired(recs: list[dict], method: str, reference: str) -> tuple[float, float, float, int]:
    d = [r["ua"][method] - r["ua"][reference] for r in recs if method in r["ua"] and reference in r["ua"]]
    return (*paired_interval(d), len(d)) if d else (float("nan"), float("nan"), float("nan"), 0)


def best_single(recs: list[dict], singles: Sequence[str] = SINGLE) -> str:
    """The single-language method with the highest mean UA over ``recs`` (one target, protocol and K)."""
    singles = [m for m in singles if any(m in r["ua"] for r in recs)]
    return max(singles, key=lambda m: np.mean([r["ua"][m] for r in recs if m in r["ua"]]))


def without_speakers(methods: Sequence[str]) -> list[str]:
    """The methods that need no speaker statistics at prediction time (``train --transfer-to`` without
    ``--speaker-norm``)."""
    return [m for m in methods if not m.endswith("_spk")]


def select_method(recs: list[dict], target: str, candidates: Sequence[str],
                  singles: Sequence[str] = SINGLE) -> tuple[str, dict[str, float]]:
    """The transfer method of ``target``: the largest mean gain over the best single-language method on its
    pseudo-targets (the other two languages, each with the third as its only source; the best single method of
    each pseudo-target and K by its mean UA there), random protocol, every K and seed: no data of ``target``."""
    others = [x for x in LANGUAGES if x != target]
    pseudo = [r for r in recs if r["protocol"] == "random" and r["target"] in others and target not in r["sources"]]
    if not pseudo:
        raise SystemExit(f"--report: no pseudo-target runs of {target} to choose its transfer method on (they are "
                         "part of the random protocol's study: run it with --protocols random first)")
    groups = {}
    for r in pseudo:
        groups.setdefault((r["target"], r["k"]), []).append(r)
    diffs: dict[str, list[float]] = {m: [] for m in candidates}
    for group in groups.values():
        ref = best_single(group, singles)
        for m in candidates:
            diffs[m] += [r["ua"][m] - r["ua"][ref] for r in group if m in r["ua"]]
    gains = {m: float(np.mean(v)) for m, v in diffs.items() if v}
    return max(gains, key=gains.get), gains


def shared_method(recs: list[dict], targets: Sequence[str], candidates: Sequence[str],
                  singles: Sequence[str] = SINGLE) -> tuple[str, dict[str, float]]:
    """One transfer method for every target: the largest mean over ``targets`` of each target's pseudo-target gain
    (:func:`select_method`; candidates with a gain for every target). No data of any target's own runs is read."""
    per_target = [select_method(recs, t, candidates, singles)[1] for t in targets]
    gains = {m: float(np.mean([g[m] for g in per_target])) for m in candidates if all(m in g for g in per_target)}
    return max(gains, key=gains.get), gains


def study_targets(recs: list[dict]) -> list[str]:
    """The languages the study ran as targets (records with both others as sources and the study's own methods;
    ``--network`` also trains the pseudo-targets' networks, which are no target of a ``--targets`` subset)."""
    return [t for t in LANGUAGES if any(r["target"] == t and len(r["sources"]) == 2 and REFERENCE in r["ua"] for r in recs)]


def report(path: Path | Sequence[Path]) -> str:
    recs = with_pseudo_single_net(records(path))
    methods = sorted({m for r in recs for m in r["ua"]})
    transfer = [m for m in methods if m not in SINGLE]
    lines = []
    targets = study_targets(recs)
    for t in targets:
        best, gains = select_method(recs, t, transfer)
        lines.append(f"- {t}: pseudo-target gains over the best single method: "
                     + ", ".join(f"{m} {g:+.3f}" for m, g in sorted(gains.items(), key=lambda kv: -kv[1])[:4])
                     + f" -> **{best}**")
    shared, shared_gains = shared_method(recs, targets, transfer)
    lines.append("- one method for all targets (the mean of the targets' gains): "
                 + ", ".join(f"{m} {g:+.3f}" for m, g in sorted(shared_gains.items(), key=lambda kv: -kv[1])[:4])
                 + f" -> **{shared}**, the method of the tables below")
    plain = []
    for t in targets:
        best, gains = select_method(recs, t, without_speakers(transfer), without_speakers(SINGLE))
        plain.append(f"- {t}: " + ", ".join(f"{m} {g:+.3f}" for m, g in sorted(gains.items(), key=lambda kv: -kv[1])[:3])
                     + f" -> **{best}**")
    plain_shared, gains = shared_method(recs, targets, without_speakers(transfer), without_speakers(SINGLE))
    plain.append("- one method for all targets: " + ", ".join(
        f"{m} {g:+.3f}" for m, g in sorted(gains.items(), key=lambda kv: -kv[1])[:3]) + f" -> **{plain_shared}**")
    out = ["Transfer method per target, chosen on its pseudo-targets (no data of the target), and one for all targets:",
           "", *lines, "",
           "The same among the methods without speaker statistics (what --transfer-to fits without --speaker-norm), against the best single "
           "method without them:", "", *plain, ""]
    out += ["| protocol | target | K | runs | single (UA) | chosen − single [95% CI] | chosen − best single-language "
            "[95% CI] | method without speaker statistics − single [95% CI] |", "| --- | --- | ---: | ---: | --- | --- | --- | --- |"]
    for protocol in ("random", "speaker"):
        for t in targets:
            main = [r for r in recs if r["protocol"] == protocol and r["target"] == t and len(r["sources"]) == 2]
            for k in sorted({r["k"] for r in main}):
                rk = with_every_head([r for r in main if r["k"] == k])
                head, best = best_single(rk, HEADS), best_single(rk)
                m = shared if any(shared in r["ua"] for r in rk) else plain_shared
                a, b, c = paired(rk, m, head), paired(rk, m, best), paired(rk, plain_shared, head)
                cell = lambda v: f"{v[0]:+.3f} [{v[1]:+.3f}, {v[2]:+.3f}]"  # noqa: E731
                note = " (transductive)" if protocol == "speaker" and m.endswith("_spk") else ""
                out.append(f"| {protocol} | {t} | {k} | {len(rk)} | {head} ({np.mean([r['ua'][head] for r in rk]):.3f}) | "
                           f"{m}{note}: {cell(a)} | vs {best}: {cell(b)} | {plain_shared}: {cell(c)} |")
    out.append("")
    for title, family in BESIDE.items():
        out += beside_choice(recs, targets, [m for m in family if m in methods], shared, title)
    for protocol in ("random", "speaker"):
        for t in LANGUAGES:
            main = [r for r in recs if r["protocol"] == protocol and r["target"] == t and len(r["sources"]) == 2]
            if not main:
                continue
            for k in sorted({r["k"] for r in main}):
                rk = with_every_head([r for r in main if r["k"] == k])
                best = best_single(rk)
                head = best_single(rk, HEADS)
                out.append(f"#### {t}, {protocol} protocol, K = {k} ({len(rk)} runs; single = {head}; best "
                           f"single-language method by mean test UA: {best})")
                out.append("")
                picks = Counter(r["picked"]["cv_spk"] for r in rk if "cv_spk" in r.get("picked", {}))
                if picks:
                    out += ["cv_spk picked " + ", ".join(f"{m} in {n} of {sum(picks.values())} runs"
                                                         for m, n in picks.most_common()) + ".", ""]
                out.append("| method | test UA mean ± std | − single [95% CI] | − best single-language [95% CI] |")
                out.append("| --- | ---: | ---: | ---: |")
                for m in methods:
                    v = [r["ua"][m] for r in rk if m in r["ua"]]
                    if not v:
                        continue
                    a = paired(rk, m, head)
                    b = paired(rk, m, best)
                    mark = " (chosen)" if m == shared else ""
                    out.append(f"| {m}{mark} | {np.mean(v):.3f} ± {np.std(v, ddof=1):.3f} | "
                               f"{a[0]:+.3f} [{a[1]:+.3f}, {a[2]:+.3f}] | {b[0]:+.3f} [{b[1]:+.3f}, {b[2]:+.3f}] |")
                out.append("")
    return "\n".join(out)


def beside_choice(recs: list[dict], targets: Sequence[str], methods: Sequence[str], chosen: str, title: str) -> list[str]:
    """A table of ``methods`` that have no pseudo-target runs (so are not candidates of the choice), each minus
    single on the runs that have all of them, and the chosen method on the same runs (:func:`beside_rows`)."""
    rows = beside_rows(recs, targets, methods, chosen)
    if not rows:
        return []
    shown = beside_methods(recs, methods, chosen)
    out = [f"{title} (not candidates of the choice: they have no pseudo-target runs), each minus single on the "
           "same runs, and the chosen method on those runs (—: fewer runs than the others of the row so far):", "",
           "| protocol | target | K | runs | single (UA) | " + " | ".join(f"{m} − single [95% CI]" for m in shown) + " |",
           "| --- | --- | ---: | ---: | --- | " + " | ".join("---" for _ in shown) + " |"]
    for row in rows:
        rk, head = row.runs, row.single

        def column(m: str) -> str:
            if m not in row.differences:
                return "—"
            d, lo, hi, _ = row.differences[m]
            return f"{np.mean([r['ua'][m] for r in rk]):.3f}: {d:+.3f} [{lo:+.3f}, {hi:+.3f}]"

        out.append(f"| {row.protocol} | {row.target} | {row.k} | {len(rk)} | {head} "
                   f"({np.mean([r['ua'][head] for r in rk]):.3f}) | " + " | ".join(column(m) for m in shown) + " |")
    return [*out, ""]


class BesideRow(NamedTuple):
    """One (protocol, target, K) of :func:`beside_rows`: its runs, single's method, and each shown method minus
    single on those runs (mean, low, high, n)."""

    protocol: str
    target: str
    k: int
    runs: list[dict]
    single: str
    differences: dict[str, tuple[float, float, float, int]]


def beside_methods(recs: list[dict], methods: Sequence[str], chosen: str) -> list[str]:
    """The methods shown beside the choice: ``methods``, then ``chosen`` where it has runs."""
    return [*methods, *([chosen] if any(chosen in r["ua"] for r in recs) else [])]


def beside_rows(recs: list[dict], targets: Sequence[str], methods: Sequence[str], chosen: str) -> list[BesideRow]:
    """Per protocol, target and K: ``methods`` (and ``chosen``, where it has runs) minus single, paired on the runs
    that have all of the shown ones. While a study is still running, a method with fewer runs than the others of a
    row is left out of it rather than shrinking their runs: the row shows the methods with at least n runs, n the
    count that shows the most values."""
    if not methods:
        return []
    shown = beside_methods(recs, methods, chosen)
    rows = []
    for protocol in ("random", "speaker"):
        for t in targets:
            main = [r for r in recs if r["protocol"] == protocol and r["target"] == t and len(r["sources"]) == 2]
            for k in sorted({r["k"] for r in main}):
                cell = with_every_head([r for r in main if r["k"] == k])
                runs = {m: sum(m in r["ua"] for r in cell) for m in shown}
                counts = sorted({n for m, n in runs.items() if m != chosen and n})
                if not counts:
                    continue
                # the methods with at least n runs, n the count that shows the most values (ties: more methods)
                least = max(counts, key=lambda n: (n * sum(runs[m] >= n for m in methods), -n))
                present = [m for m in shown if runs[m] >= least]
                rk = [r for r in cell if all(m in r["ua"] for m in present)]
                if not rk:
                    continue
                head = best_single(rk, HEADS)
                rows.append(BesideRow(protocol, t, k, rk, head, {m: paired(rk, m, head) for m in present}))
    return rows


def summary(path: Path | Sequence[Path]) -> dict:
    """Per protocol, target, K: the chosen method, best single, and the paired difference (for the plot)."""
    recs = with_pseudo_single_net(records(path))
    methods = sorted({m for r in recs for m in r["ua"]})
    transfer = [m for m in methods if m not in SINGLE]
    out = {}
    targets = study_targets(recs)
    best = shared_method(recs, targets, transfer)[0] if targets else None
    for t in targets:
        for protocol in ("random", "speaker"):
            main = [r for r in recs if r["protocol"] == protocol and r["target"] == t and len(r["sources"]) == 2]
            for k in sorted({r["k"] for r in main}):
                rk = with_every_head([r for r in main if r["k"] == k])
                ref, head = best_single(rk), best_single(rk, HEADS)
                out[f"{protocol} {t} {k}"] = {"chosen": best, "single": head, "best_single": ref,
                                              "vs_single": {m: paired(rk, m, head) for m in transfer},
                                              "vs_best_single": {m: paired(rk, m, ref) for m in transfer}}
    return out


def plot(path: Path | Sequence[Path], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs = [r for r in records(path) if r["protocol"] == "random" and len(r["sources"]) == 2]
    targets = study_targets(recs)
    show = ["zeroshot", "stack", "pooled_c0.01", "pooled_spk", "self_pooled_spk", "single_spk", "self_spk",
            *[m for m in (*ENSEMBLES, *NETWORK_TRANSFER) if any(m in r["ua"] for r in recs)]]
    fig, axes = plt.subplots(2, len(targets), figsize=(4.5 * len(targets), 7), squeeze=False)
    for j, t in enumerate(targets):
        ks = sorted({r["k"] for r in recs if r["target"] == t})
        rt = [r for k in ks for r in with_every_head([r for r in recs if r["target"] == t and r["k"] == k])]
        heads = {k: best_single([r for r in rt if r["k"] == k], HEADS) for k in ks}
        for m in ["single", *show]:
            means = [np.mean([r["ua"][heads[k] if m == "single" else m] for r in rt if r["k"] == k
                              and (m == "single" or m in r["ua"])] or [np.nan]) for k in ks]
            axes[0, j].plot(ks, means, marker="o", label=m, color="black" if m == "single" else None)
            if m == "single":
                continue
            d = [paired([r for r in rt if r["k"] == k], m, heads[k]) for k in ks]
            off = (show.index(m) - len(show) / 2) * 0.12
            axes[1, j].errorbar([k + off for k in ks], [x[0] for x in d], yerr=[[x[0] - x[1] for x in d], [x[2] - x[0] for x in d]],
                                marker="o", capsize=3, label=m)
        axes[0, j].set_title(f"{t} (random protocol)")
        axes[0, j].set_xlabel("labelled utterances per emotion (K)")
        axes[0, j].set_ylabel("test UA (mean over seeds)")
        axes[1, j].axhline(0, color="grey", lw=0.8)
        axes[1, j].axhline(0.05, color="grey", lw=0.8, ls=":")
        axes[1, j].set_xlabel("K")
        axes[1, j].set_ylabel("method − single (best single model; 95% CI)")
        axes[0, j].set_xticks(ks)
        axes[1, j].set_xticks(ks)
    axes[0, -1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(png, dpi=110)


def plot_beside(path: Path | Sequence[Path], png: Path) -> Path | None:
    """Each family of :data:`BESIDE` that has runs in a panel: per protocol, target and K (with its number of runs),
    each of its methods and the chosen one minus single on the same runs, with their 95% intervals (the tables of
    :func:`beside_choice`). None when no family has runs."""
    from train.plots import plot_differences

    recs = with_pseudo_single_net(records(path))
    methods = {m for r in recs for m in r["ua"]}
    targets = study_targets(recs)
    chosen = shared_method(recs, targets, sorted(m for m in methods if m not in SINGLE))[0] if targets else ""
    panels = {}
    for title, family in BESIDE.items():
        rows = beside_rows(recs, targets, [m for m in family if m in methods], chosen)
        if rows:
            panels[title] = {f"{row.target} K={row.k}\n{row.protocol}, n={len(row.runs)}":
                             {m: d[:3] for m, d in row.differences.items()} for row in rows}
    if not panels:
        return None
    return plot_differences(panels, png, "method − single (95% CI)",
                            title=f"Beside the choice: each method and the chosen one ({chosen}) minus single, same runs")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--features-dir", default="features")
    p.add_argument("--features", default=",".join(FEATURES))
    p.add_argument("--out", default="runs/fewshot")
    p.add_argument("--targets", default=",".join(LANGUAGES))
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--first-seed", type=int, default=0, help="The random protocol's seeds are FIRST_SEED .. FIRST_SEED + "
                                                             "SEEDS - 1: more seeds of the linear methods and of "
                                                             "--multidomain (then in a folder of its own), to join the "
                                                             "earlier ones with --also. Not with --network or "
                                                             "--transfer-net.")
    p.add_argument("--shots", default="5,10")
    p.add_argument("--pseudo-seeds", type=int, default=5, help="Seeds of the pseudo-target runs (method choice).")
    p.add_argument("--folds", type=int, default=6)
    p.add_argument("--speaker-shots", type=int, default=10)
    p.add_argument("--also", nargs="*", default=[], help="--report: further records to add: study folders (their "
                                                         "results.jsonl) or .jsonl files (the records archived with "
                                                         "a report).")
    p.add_argument("--protocols", default="random,speaker", help="Parts of the study to run (random, speaker).")
    p.add_argument("--report", default=None, help="Write the tables (markdown) of OUT/results.jsonl here, and a plot beside.")
    p.add_argument("--network", default=None, help="Also the network on the shots alone (single_net) and the ensembles: "
                                                   "train its runs into this folder (before the linear methods, which "
                                                   "read them); with --report, read them.")
    p.add_argument("--multidomain", default=None, help="Also the five multi-domain models with the K shots (md_*): "
                                                       "train their learning curves into this folder; with "
                                                       "--report, read them.")
    p.add_argument("--workers", type=int, default=0, help="Run the study's runs (linear methods: one per target, sources "
                                                          "and seed or fold) and the train configurations of --network, "
                                                          "--transfer-net and --multidomain (one per language, K and "
                                                          "model, with all its seeds or folds) on a LocalCluster of this "
                                                          "many Dask workers; 0: one after the other in this process.")
    p.add_argument("--scheduler", default=None, help="Run the study's runs and the train configurations on this "
                                                     "Dask cluster instead (its scheduler's address or scheduler file, "
                                                     "mgser cluster slurm).")
    p.add_argument("--models", default=",".join(MULTIDOMAIN), help="--multidomain: the multi-domain models to train "
                                                                  "(a comma-separated subset of the five).")
    p.add_argument("--transfer-net", default=None, help="Also the network transfer methods (adapt_net, proto_net, head_net): "
                                                        "train their source models and runs into this folder; with --report, read them.")
    args = p.parse_args(argv)
    if args.workers < 0:
        p.error(f"--workers: {args.workers} is below 0")
    if args.first_seed < 0:
        p.error(f"--first-seed: {args.first_seed} is below 0")
    if args.first_seed and not args.report and (args.network or args.transfer_net):
        p.error("--first-seed: not with --network or --transfer-net (their runs are numbered from seed 0)")
    args.features = args.features.split(",")
    args.targets = args.targets.split(",")
    args.shots = list(dict.fromkeys(int(k) for k in args.shots.split(",")))
    args.protocols = args.protocols.split(",")
    args.models = list(dict.fromkeys(args.models.split(",")))
    if unknown := [m for m in args.models if m not in MULTIDOMAIN]:
        p.error(f"--models: {', '.join(unknown)}: not a multi-domain model (one of {', '.join(MULTIDOMAIN)})")
    if args.report:
        for option, folder in (("--network", args.network), ("--transfer-net", args.transfer_net),
                               ("--multidomain", args.multidomain)):
            if folder and not Path(folder).is_dir():
                p.error(f"{option}: {folder}: no such folder (with --report, the runs to read)")
        files = [Path(args.out) / "results.jsonl"]
        for also in map(Path, args.also):
            files.append(also if also.suffix == ".jsonl" else also / "results.jsonl")
            if not files[-1].is_file():
                p.error(f"--also: {files[-1]}: no such file (a study folder with results.jsonl, or a .jsonl file)")
        Path(args.out).mkdir(parents=True, exist_ok=True)
        if args.network:
            network = Path(args.out) / "network.jsonl"
            network.write_text("".join(json.dumps(r) + "\n" for r in network_records(Path(args.network))))
            files.append(network)
        if args.transfer_net:
            network = Path(args.out) / "transfer_net.jsonl"
            network.write_text("".join(json.dumps(r) + "\n" for r in transfer_net_records(Path(args.transfer_net))))
            files.append(network)
        if args.multidomain:
            multidomain = Path(args.out) / "multidomain.jsonl"
            md = check_curve_single(records(files), multidomain_records(Path(args.multidomain)))
            multidomain.write_text("".join(json.dumps(r) + "\n" for r in md))
            files.append(multidomain)
        text = report(files)
        path = Path(args.report)
        path.write_text(text + "\n")
        plot(files, path.with_suffix(".png"))
        plot_beside(files, path.with_name(f"{path.stem}_beside.png"))
        (Path(args.out) / "summary.json").write_text(json.dumps(summary(files), indent=2))
        print(text)
        return 0
    if args.network:
        status = network_single(args)  # first: the ensembles of the study read its runs
        if status:
            return status
    status = study(args)
    if args.transfer_net:
        status = network_transfer(args) or status
    if args.multidomain:
        status = multidomain_curves(args) or status
    return status


if __name__ == "__main__":
    sys.exit(main())
