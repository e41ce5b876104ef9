"""One run of a configuration: split, standardise, build, fit (and refit) for one seed or speaker fold."""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import ConcatDataset

from sercore.errors import StoreError

from .augment import SequenceAugment
from .config import ENSEMBLE_MODEL, HEAD_MODELS, SINGLE_MODEL, ConfigError, ExperimentConfig, TrainConfig, ensemble_members
from .model_io import DomainInfo
from .dataset import FeatureDataset
from .domains import DomainData
from .pooled_heads import HeadConfig, HeadFit, head_module, make_head, select_head
from .batch_limits import check_batch_memory, max_frames
from .models import build_model
from .models.pooled_head import pooled_dim
from .models.single import GE2E_FEATURE
from .pooling import pool
from .protocol import draw_split, few_shot, split_indices, split_key
from .scaling import FeatureScaler, SpeakerScaler, speaker_standardised, standardise
from .network_trainer import FitResult, Trainer
from .warm_start import warm_start

log = logging.getLogger("mgser.train")


@dataclass
class RunResult:
    run: int
    seed: int
    fold: int | None
    fit: FitResult
    test_speakers: dict[str, list[str]] = field(default_factory=dict)
    #: What a multi-domain model reports about its mixing (gate weights, NAS connections); see compare.py.
    details: dict = field(default_factory=dict)


def input_features(config: ExperimentConfig, features: list[str], inputs: dict[str, str]) -> list[str]:
    """What must be read from the stores: the model's features, plus the input of each fine-tuned module
    (``inputs``: ``{feature: input}`` from the stores' provenance, e.g. ``ge2e_mel`` when GE2E is fine-tuned)."""
    tuned = [GE2E_FEATURE] if config.train.finetune_ge2e else []
    extra = [inputs[f] for f in tuned if f in features and f in inputs]
    return features + [f for f in extra if f not in features]


def domain_info(data: DomainData, features: list[str]) -> DomainInfo:
    inputs = {f: i for f, i in data.inputs.items() if f in features}
    layers = {f: len(data.provenance[f].get("layers") or ()) for f in features}
    return DomainInfo(data.spec.language, data.classes, {f: data.kinds[f] for f in features}, data.dims(), inputs,
                      layers={f: n for f, n in layers.items() if n > 1})


def few_shot_indices(idx: Mapping[str, list[int]], emotions: Sequence[str], k: int, seed: int,
                     trained: set[str], keep_valid: bool = False) -> dict[str, list[int]]:
    """A few-shot language's split (``ExperimentConfig.few_shot``): at most ``k`` training utterances per emotion
    and no validation utterance (``keep_valid``: its whole validation split, the old protocol); for k = 0 no
    training or validation utterance, and only the test utterances of the ``trained`` emotions (those of the
    languages that are trained)."""
    if k > 0:
        return {**idx, "train": few_shot(idx["train"], emotions, k, seed), "valid": idx["valid"] if keep_valid else []}
    return {"train": [], "valid": [], "test": [i for i in idx["test"] if emotions[i] in trained]}


def fit_run(config: ExperimentConfig, domain_data: list[DomainData], features: list[str], run: int,
            description: str = "") -> RunResult:
    """Split, standardise, build and fit for run ``run`` (seed ``first_seed + run``, or fold ``run``)."""
    if config.model in HEAD_MODELS:  # fitted by scikit-learn on pooled statistics
        return fit_head_run(config, domain_data, features, run, description)
    if config.model == ENSEMBLE_MODEL:
        return fit_ensemble_run(config, domain_data, features, run, description)
    seed = config.first_seed + run
    fold = run if config.protocol == "speaker" else None
    parts: dict[str, list[FeatureDataset]] = {"train": [], "valid": [], "test": []}
    scalers, test_speakers = [], {}
    trained = {c for d in domain_data if config.few_shot.get(d.spec.language) != 0 for c in d.classes}
    # each domain's training utterances before a few-shot limit: their audio standardises the features even
    # when few of their labels are used
    unlabelled: list[list[int]] = []
    indices: list[Mapping[str, list[int]]] = []
    for data in domain_data:
        idx = split_indices(draw_split(data, config.protocol, split_key(config.protocol, config.first_seed, run), config.folds))
        unlabelled.append(idx["train"])
        if data.spec.language in config.few_shot:
            idx = few_shot_indices(idx, data.emotions, config.few_shot[data.spec.language], seed, trained,
                                   config.few_shot_valid)
        indices.append(idx)
    # before any work: refuse a batch that would not fit (train/batch_limits.py); the refit also trains on valid
    n_train = sum(len(idx["train"]) + (len(idx["valid"]) if config.train.refit else 0) for idx in indices)
    check_batch_memory(config, domain_data, features, n_train)

    def make_dataset(d: int, rows: list[int], augment: bool, speakers: Mapping[tuple[int, str], int] | None = None) -> FeatureDataset:
        """Domain d's utterances ``rows``, standardised, with the training augmentation when ``augment``;
        ``speakers``: the training speakers' indices, ``{(domain, speaker): index}`` (``--speaker-adversarial``)."""
        data = domain_data[d]
        augmentation = SequenceAugment(config.train.crop, config.train.time_mask, config.train.feature_mask) if augment else None
        return FeatureDataset(data, rows, data.classes, domain=d, scaler=scalers[d], augment=augmentation, seed=seed,
                              max_frames=max_frames(data.provenance, data.kinds, config.train.max_seconds),
                              speakers={s: i for (dd, s), i in (speakers or {}).items() if dd == d})

    def speaker_index(rows: list[list[int]]) -> dict[tuple[int, str], int]:
        """``{(domain, speaker): index}`` of the speakers of each domain's training ``rows`` (no speaker of the
        validation or test utterances, unless they are trained on), or {} without ``--speaker-adversarial``."""
        if not config.train.speaker_adversarial:
            return {}
        pairs = sorted({(d, domain_data[d].speakers[i]) for d, r in enumerate(rows) for i in r})
        if len(pairs) < 2:
            raise ConfigError("train.speaker_adversarial", f"the training utterances have {len(pairs)} speaker(s); "
                                                           "a speaker adversary needs at least 2")
        return {pair: i for i, pair in enumerate(pairs)}

    train_speakers = speaker_index([idx["train"] for idx in indices])

    for d, (data, idx) in enumerate(zip(domain_data, indices)):
        modules_inputs = list(data.inputs.values())  # the fine-tuned module sees its input as extracted
        if config.train.speaker_norm:
            scaler = SpeakerScaler.fit(data, skip=modules_inputs)
        elif config.train.standardize:
            scaler = FeatureScaler.fit(data, unlabelled[d], skip=modules_inputs)
        else:
            scaler = None
        scalers.append(scaler)
        for name in parts:
            parts[name].append(make_dataset(d, idx[name], augment=name == "train",
                                            speakers=train_speakers if name == "train" else None))
        test_speakers[data.spec.language] = sorted({data.speakers[i] for i in idx["test"]})
    datasets = {k: v[0] if len(v) == 1 else ConcatDataset(v) for k, v in parts.items()}
    train_config = config.train
    if config.few_shot:  # every K of a learning curve trains for the same number of steps: those of the whole split
        train_config = replace(train_config, epoch_size=sum(map(len, unlabelled)))
        if not any(idx["valid"] for idx in indices):  # a few-shot language alone: the fixed recipe, the last epoch
            train_config = replace(train_config, selection="last", patience=None)
    alphas = [config.language(data.spec.language).alpha if config.train.alpha is None else config.train.alpha for data in domain_data]

    def make_trainer(train_config: TrainConfig, what: str, n_speakers: int) -> Trainer:
        torch.manual_seed(seed)  # the refit starts from the same initialisation as the selection fit
        np.random.seed(seed % 2**32)
        model = build_model(config.model, config, [domain_info(data, features) for data in domain_data])
        if config.init_from:
            copied, total = warm_start(model, config.init_from)
            log.info("%s: %d of the model's %d tensors from %s", what or "warm start", copied, total, config.init_from)
        encoders = getattr(model, "encoders", None)
        for d, scaler in enumerate(scalers):
            if isinstance(scaler, FeatureScaler) and getattr(encoders, "ge2e", None) is not None and GE2E_FEATURE in scaler.mean:
                # the fine-tuned embedding is standardised with the stored embedding's training statistics of its language
                encoders.ge2e_mean[d].copy_(torch.from_numpy(scaler.mean[GE2E_FEATURE]))
                encoders.ge2e_std[d].copy_(torch.from_numpy(scaler.std[GE2E_FEATURE]))
        return Trainer(model, train_config, [data.classes for data in domain_data], alphas, seed=seed, description=what,
                       n_speakers=n_speakers)

    trainer = make_trainer(train_config, description, len(train_speakers))
    result = trainer.fit(datasets["train"], datasets["valid"], datasets["test"])
    if config.train.refit:
        # The number of epochs was chosen on the validation split; now train again on train + valid for exactly
        # that many epochs and test the last one (the validation scores reported stay those of the selection fit).
        refit_config = replace(config.train, epochs=result.best_epoch, selection="last", patience=None)
        # the validation utterances are training utterances now: augmented like them (and their speakers adversarial)
        refit_speakers = speaker_index([idx["train"] + idx["valid"] for idx in indices])
        trainer = make_trainer(refit_config, f"{description} refit", len(refit_speakers))
        del datasets["train"], parts["train"]
        refit_train = [make_dataset(d, idx["train"] + idx["valid"], augment=True, speakers=refit_speakers)
                       for d, idx in enumerate(indices)]
        refit = trainer.fit(refit_train[0] if len(refit_train) == 1 else ConcatDataset(refit_train), datasets["valid"],
                            datasets["test"])
        result = replace(result, test=refit.test, state=refit.state, seconds=result.seconds + refit.seconds,
                         history=result.history + [{"refit_epochs": result.best_epoch, "refit_seconds": refit.seconds}])
    # a per-speaker scaler is not part of the model: a new speaker brings its own statistics
    result.state["scalers"] = [{"mean": s.mean, "std": s.std} if isinstance(s, FeatureScaler) else None for s in scalers]
    describe = getattr(trainer.eval_model, "describe", None)  # multi-domain models: gates on the test set
    details = describe(result.test.extras, result.test.domains) if describe else {}
    return RunResult(run, seed, fold, result, test_speakers, details)


# --------------------------------------------------------------------------------------------------
# One run of ``train --model logreg|linsvm|rbfsvm``


def cropped_pooled(data: DomainData, features: Sequence[str], rows: Sequence[int], max_seconds) -> np.ndarray:
    """(len(rows), pooled dim) float64: the pooled statistics (:func:`train.pooling.pool`) of ``data``'s rows, each
    sequence centre-cropped to ``max_seconds`` as the network's datasets crop it (float64 as ``predict`` computes
    what follows, the per-speaker standardisation of ``--speaker-norm``)."""
    from .batch_limits import crop_center

    info = domain_info(data, features)
    limit = max_frames(data.provenance, data.kinds, max_seconds)

    def one(i: int) -> np.ndarray:
        return np.concatenate([pool(crop_center(data.features[f][i], limit.get(f)) if info.kinds[f] == "sequence"
                                    else data.features[f][i], info.kinds[f]) for f in features])

    return np.stack([one(i) for i in rows]).astype(np.float64) if len(rows) else np.zeros((0, pooled_dim(info.kinds, info.dims)))


#: transfer_fit's pooled rows of each source and --unlabelled corpus, with the DomainData they were computed from.
_EVERY_ROW: dict[tuple, tuple] = {}


def transfer_fit(config, data, features: list[str], run: int, x_labelled: np.ndarray,
                 y_labelled: np.ndarray, x_unlabelled: np.ndarray, x_pool: np.ndarray | None = None) -> HeadFit:
    """``train --transfer-to``: the pooled head of the target ``data`` (:mod:`train.transfer`), the sources'
    training and validation utterances of the run's split (seed, or fold) standardised with their training split
    (with ``--speaker-norm`` each utterance first with its own speaker's statistics). ``x_pool`` (the target's
    training rows without a label) given: the head is self-trained on them and on every recording of
    ``--unlabelled``; None: not self-trained."""
    from .duplicates import shared_recordings
    from .transfer import SPEAKER_TRANSFER_C, TRANSFER_C, fit_pooled_transfer, load_source

    def every_row(domain: str, labelled: bool = True) -> tuple:
        """A corpus's DomainData and the pooled statistics of all its rows (per speaker with --speaker-norm),
        computed once per process for the DomainData that load_source gives (none depends on the run)."""
        d = load_source(domain, config.features_dir, features, labelled)
        key = (str(d.spec), labelled, tuple(features), config.train.max_seconds, config.train.speaker_norm)
        cached = _EVERY_ROW.get(key)
        if cached is None or cached[0] is not d:  # not computed yet, or the corpus was read again (re-extracted)
            x = cropped_pooled(d, features, range(len(d.utt_ids)), config.train.max_seconds)
            _EVERY_ROW[key] = (d, speaker_standardised(x, d.speakers) if config.train.speaker_norm else x)
        return _EVERY_ROW[key]

    sources = []
    for domain in config.transfer_sources:
        src, x = every_row(domain)
        idx = split_indices(draw_split(src, config.protocol, split_key(config.protocol, config.first_seed, run),
                                       config.folds))
        z, _, _ = standardise(x, x[idx["train"]])
        rows = idx["train"] + idx["valid"]
        sources.append((z[rows], [src.emotions[i] for i in rows]))
    c = SPEAKER_TRANSFER_C if config.train.speaker_norm else TRANSFER_C
    pools = None
    if x_pool is not None:  # self-training: the target's training rows without a label and its unlabelled recordings
        pools = [x_pool]
        for domain in config.transfer_unlabelled:
            more, x = every_row(domain, labelled=False)
            shared = shared_recordings(data, more)
            if shared:  # a test utterance among them would be labelled by the head before it is tested
                raise StoreError(Path(config.features_dir) / more.spec.dataset,
                                 f"{shared[0][1]!r} is a recording of {data.spec.dataset} ({shared[0][0]!r}; "
                                 f"{len(shared)} in all): give recordings the target's corpus does not hold")
            pools.append(x)
    return fit_pooled_transfer(x_labelled, [data.classes[i] for i in y_labelled], x_unlabelled, data.classes, sources,
                               c, x_pool=None if pools is None else np.concatenate(pools))


def head_config(config) -> HeadConfig:
    """The head of an :class:`~train.config.ExperimentConfig` (its ``model``), with the default grids."""
    return HeadConfig(config.model)


def fit_head_run(config, domain_data, features: list[str], run: int, description: str = "", self_train: bool = False):
    """The head's :func:`train.fit_run.fit_run`: split, pool, choose and fit on train, calibrate on valid, test.
    With ``--transfer-to`` the transfer head, self-trained with ``--speaker-norm`` or ``self_train``."""
    from .calibration import apply_temperature, fit_temperature, nll
    from .metrics import score
    from .network_trainer import Evaluation

    if len(domain_data) != 1:
        raise ValueError(f"--model {config.model} is a single-language model; give one language")
    data = domain_data[0]
    start = time.perf_counter()
    seed = config.first_seed + run
    fold = run if config.protocol == "speaker" else None
    idx = split_indices(draw_split(data, config.protocol, split_key(config.protocol, config.first_seed, run), config.folds))
    unlabelled = idx["train"]  # before a few-shot limit: its audio standardises a transfer head's inputs
    if data.spec.language in config.few_shot:
        idx = few_shot_indices(idx, data.emotions, config.few_shot[data.spec.language], seed, set(data.classes),
                               config.few_shot_valid)
    info = domain_info(data, features)

    def pooled(rows: list[int]) -> np.ndarray:
        return cropped_pooled(data, features, rows, config.train.max_seconds)

    if config.train.speaker_norm:  # every utterance with its own speaker's statistics (no label; all splits)
        everything = speaker_standardised(pooled(list(range(len(data.utt_ids)))), data.speakers)
        rows_of = lambda rows: everything[np.asarray(rows, dtype=np.int64)]  # noqa: E731
    else:
        rows_of = pooled
    x = {name: rows_of(rows) for name, rows in idx.items()}
    y = {name: np.array([data.classes.index(data.emotions[i]) for i in rows], dtype=np.int64)
         for name, rows in idx.items()}
    speakers = np.array(data.speakers)
    groups = speakers[idx["train"]] if config.protocol == "speaker" else None
    hc = head_config(config)
    if config.transfer_sources:  # train --transfer-to: the pooled head over every language (train/transfer.py)
        labelled = set(idx["train"])
        self_trained = config.train.speaker_norm or self_train
        without_label = [i for i in unlabelled if i not in labelled] if self_trained else None
        fit = transfer_fit(config, data, features, run, x["train"], y["train"], rows_of(unlabelled),
                           None if without_label is None else rows_of(without_label))
    else:
        fit = select_head(hc, x["train"], y["train"], groups, seed=seed)
    n_classes = len(data.classes)
    temperature = fit_temperature(fit.decision(x["valid"]), y["valid"]) if len(y["valid"]) else 1.0
    head = head_module(fit, info.kinds, info.dims, n_classes, temperature)
    history = [{"head": hc.as_dict(), "chosen": fit.params, "inner_ua": fit.inner_ua, "searched": fit.searched,
                "temperature": temperature, "select_seconds": round(fit.seconds, 2)}]
    if config.train.refit:  # the same hyperparameters and temperature, fitted on train + valid
        from sklearn.exceptions import ConvergenceWarning

        pipeline = make_head(hc.kind, c=fit.params["c"], gamma=fit.params.get("gamma", "scale"), max_iter=hc.max_iter)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            pipeline.fit(np.concatenate([x["train"], x["valid"]]), np.concatenate([y["train"], y["valid"]]))
        selection_head = head
        head = head_module(HeadFit(hc, pipeline, fit.params, fit.inner_ua, 0.0), info.kinds, info.dims,
                                   n_classes, temperature)
    else:
        selection_head = head

    def evaluate(model: torch.nn.Module, name: str) -> Evaluation:
        with torch.no_grad():
            logits, z = model.logits_from_pooled(torch.as_tensor(x[name]))
        logits = logits.numpy()
        labels, predictions = y[name], logits.argmax(1) if len(logits) else np.zeros(0, np.int64)
        probabilities = apply_temperature(logits, 1.0) if len(logits) else np.zeros((0, n_classes))
        loss = nll(logits, labels) if len(labels) else float("nan")
        scores = {0: score(labels, predictions, data.classes)} if len(labels) else {}
        return Evaluation(scores, loss, labels, predictions, np.zeros(len(labels), np.int64), z.float().numpy(),
                          [data.utt_ids[i] for i in idx[name]], probabilities=probabilities.astype(np.float32))

    valid, test = evaluate(selection_head, "valid"), evaluate(head, "test")
    state = {"model": {k: v.clone() for k, v in head.state_dict().items()}, "aux": {}, "scalers": [None]}
    result = FitResult(0, valid, test, history, time.perf_counter() - start, state)
    return RunResult(run, seed, fold, result, {data.spec.language: sorted({data.speakers[i] for i in idx["test"]})}, {})


# --------------------------------------------------------------------------------------------------
# One run of ``train --model ensemble`` (and of ``train --transfer-to``'s ensemble)


def member_run(config, domain_data, features: list[str], run: int, member: str, description: str = "") -> RunResult:
    """The run of one member of the ensemble ``config`` on the ensemble's split: the network (``config`` as
    ``--model single`` without per-speaker standardisation, which is the heads'; with ``--transfer-to``: on the
    target's labelled utterances alone), or a head (with ``--transfer-to``: the self-trained transfer head;
    ``--speaker-adversarial`` is the network's alone)."""
    if member in HEAD_MODELS:  # the speaker adversary trains a network's representation: the network's option
        head = replace(config, model=member, train=replace(config.train, speaker_adversarial=0.0))
        return fit_head_run(head, domain_data, features, run, description, self_train=bool(config.transfer_sources))
    # --speaker-norm standardises the heads' pooled statistics; the network standardises per corpus (predict cannot
    # standardise a network's frames per speaker)
    alone = {"transfer_sources": [], "transfer_unlabelled": []} if config.transfer_sources else {}
    network = replace(config, model=member, train=replace(config.train, speaker_norm=False), **alone)
    return fit_run(network, domain_data, features, run, description)


def fit_ensemble_run(config, domain_data, features: list[str], run: int, description: str = "") -> RunResult:
    """The ensemble's :func:`fit_run`: every member (:func:`train.config.ensemble_members`) fitted on the run's
    split, each member's temperature fitted on its validation split, and the weights chosen there
    (:mod:`train.ensemble_weights`), or, with ``--transfer-to``, equal (:mod:`train.transfer`); the test split
    scored once."""
    from .calibration import apply_temperature, fit_temperature, log_loss, log_probabilities
    from .ensemble_weights import combine, select_weights
    from .metrics import score
    from .network_trainer import Evaluation

    if len(domain_data) != 1:
        raise ValueError(f"--model {config.model} is a single-language model; give one language")
    data = domain_data[0]
    start = time.perf_counter()
    members = ensemble_members(config)
    results = {m: member_run(config, domain_data, features, run, m, f"{description} {m}".strip()) for m in members}
    network = results[SINGLE_MODEL].fit
    order = {"valid": network.valid.utt_ids, "test": network.test.utt_ids}

    def rows(evaluation: Evaluation, name: str) -> np.ndarray:
        """The member's probabilities in the network's row order."""
        where = {u: i for i, u in enumerate(evaluation.utt_ids)}
        if sorted(where) != sorted(order[name]):
            raise RuntimeError(f"the ensemble's members were scored on different {name} utterances")
        if not where:  # no utterance (a few-shot target has no validation split)
            return np.zeros((0, len(data.classes)))
        return np.asarray(evaluation.probabilities, dtype=np.float64)[[where[u] for u in order[name]]]

    labels = {"valid": network.valid.labels, "test": network.test.labels}
    n_classes = len(data.classes)
    valid_p = {m: rows(r.fit.valid, "valid")[:, :n_classes] for m, r in results.items()}
    test_p = {m: rows(r.fit.test, "test")[:, :n_classes] for m, r in results.items()}
    temperatures = {m: fit_temperature(log_probabilities(p), labels["valid"]) if len(p) else 1.0 for m, p in valid_p.items()}
    valid_c = [apply_temperature(log_probabilities(valid_p[m]), temperatures[m]) for m in members]
    test_c = [apply_temperature(log_probabilities(test_p[m]), temperatures[m]) for m in members]
    if config.transfer_sources:  # the recipe chosen on pseudo-targets (bench/fewshot.py): no weight to choose
        weights, selection = np.full(len(members), 1.0 / len(members)), "equal weights (the transfer recipe)"
    else:
        weights, selection = select_weights(valid_c, labels["valid"]), "greedy with replacement on validation log-loss"

    def evaluate(member_p: list[np.ndarray], base: Evaluation) -> Evaluation:
        p = combine(member_p, weights) if len(base.labels) else np.zeros((0, n_classes))
        y = base.labels
        predictions = p.argmax(1) if len(p) else np.zeros(0, np.int64)
        scores = {0: score(y, predictions, data.classes)} if len(y) else {}
        return Evaluation(scores, log_loss(p, y) if len(y) else float("nan"), y, predictions,
                          np.zeros(len(y), np.int64), base.representations, list(base.utt_ids),
                          probabilities=p.astype(np.float32))

    valid, test = evaluate(valid_c, network.valid), evaluate(test_c, network.test)
    model = build_model(ENSEMBLE_MODEL, config, [domain_info(data, features)])
    model.network.load_state_dict(network.state["model"])
    for m in members:
        if m in HEAD_MODELS:
            model.heads[m].load_state_dict(results[m].fit.state["model"])
    scaler = (network.state.get("scalers") or [None])[0]
    for f, mean in (scaler or {}).get("mean", {}).items():
        if f in model.scaler.features:
            model.scaler.set(f, mean, scaler["std"][f])
    model.weights.copy_(torch.as_tensor(weights, dtype=torch.float64))
    model.temperatures.copy_(torch.as_tensor([temperatures[m] for m in members], dtype=torch.float64))
    described = {m: {"weight": float(w), "temperature": temperatures[m], "valid_ua": float(r.fit.valid.ua),
                     "test_ua": float(r.fit.test.ua), "seconds": round(r.fit.seconds, 1)}
                 for (m, r), w in zip(results.items(), weights)}
    # each member's calibrated probabilities (rows as the record's): what each member alone would have said, and
    # what another way of combining them could be chosen on (validation) and scored with (test)
    member_p = {name: {m: p.astype(np.float32).tolist() for m, p in zip(members, c)}
                for name, c in (("valid", valid_c), ("test", test_c))}
    history = [{"ensemble": {"members": described, "selection": selection,
                             "valid_probabilities": member_p["valid"], "test_probabilities": member_p["test"]}},
               *({"member": m, "history": r.fit.history} for m, r in results.items())]
    state = {"model": {k: v.clone() for k, v in model.state_dict().items()}, "aux": {}, "scalers": [None]}
    result = FitResult(network.best_epoch, valid, test, history, time.perf_counter() - start, state)
    return RunResult(run, results[SINGLE_MODEL].seed, results[SINGLE_MODEL].fold, result,
                     results[SINGLE_MODEL].test_speakers, {})
