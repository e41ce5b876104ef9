"""One run of a configuration: split, standardise, build, fit (and refit) for one seed or speaker fold."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import ConcatDataset

from .augment import SequenceAugment
from .config import HEAD_MODELS, ExperimentConfig, TrainConfig
from .contract import DomainInfo
from .dataset import FeatureDataset
from .domains import DomainData
from .memory import check_batch_memory, max_frames
from .models import build_model
from .models.single import GE2E_FEATURE
from .protocol import draw_split, few_shot, split_indices
from .scaling import FeatureScaler, SpeakerScaler
from .trainer import FitResult, Trainer


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
                     trained: set[str]) -> dict[str, list[int]]:
    """A few-shot language's split (``ExperimentConfig.few_shot``): at most ``k`` training utterances per emotion;
    for k = 0 no training or validation utterance, and only the test utterances of the ``trained`` emotions
    (those of the languages that are trained)."""
    if k > 0:
        return {**idx, "train": few_shot(idx["train"], emotions, k, seed)}
    return {"train": [], "valid": [], "test": [i for i in idx["test"] if emotions[i] in trained]}


def fit_run(config: ExperimentConfig, datas: list[DomainData], features: list[str], run: int,
            description: str = "") -> RunResult:
    """Split, standardise, build and fit for run ``run`` (seed ``first_seed + run``, or fold ``run``)."""
    if config.model in HEAD_MODELS:  # fitted by scikit-learn on pooled statistics
        from .heads import fit_head_run

        return fit_head_run(config, datas, features, run, description)
    seed = config.first_seed + run
    fold = run if config.protocol == "speaker" else None
    parts: dict[str, list[FeatureDataset]] = {"train": [], "valid": [], "test": []}
    scalers, test_speakers = [], {}
    trained = {c for d in datas if config.few_shot.get(d.spec.language) != 0 for c in d.classes}
    # each domain's training utterances before a few-shot limit: their audio standardises the features even
    # when few of their labels are used
    unlabelled: list[list[int]] = []
    indices: list[Mapping[str, list[int]]] = []
    for data in datas:
        idx = split_indices(draw_split(data, config.protocol, fold if fold is not None else seed, config.folds))
        unlabelled.append(idx["train"])
        if data.spec.language in config.few_shot:
            idx = few_shot_indices(idx, data.emotions, config.few_shot[data.spec.language], seed, trained)
        indices.append(idx)
    # before any work: refuse a batch that would not fit (train/memory.py); the refit also trains on valid
    n_train = sum(len(idx["train"]) + (len(idx["valid"]) if config.train.refit else 0) for idx in indices)
    check_batch_memory(config, datas, features, n_train)

    def make_dataset(d: int, rows: list[int], augment: bool) -> FeatureDataset:
        """Domain d's utterances ``rows``, standardised, with the training augmentation when ``augment``."""
        data = datas[d]
        augmentation = SequenceAugment(config.train.crop, config.train.time_mask, config.train.feature_mask) if augment else None
        return FeatureDataset(data, rows, data.classes, domain=d, scaler=scalers[d], augment=augmentation, seed=seed,
                              max_frames=max_frames(data.provenance, data.kinds, config.train.max_seconds))

    for d, (data, idx) in enumerate(zip(datas, indices)):
        modules_inputs = list(data.inputs.values())  # the fine-tuned module sees its input as extracted
        if config.train.speaker_norm:
            scaler = SpeakerScaler.fit(data, skip=modules_inputs)
        elif config.train.standardize:
            scaler = FeatureScaler.fit(data, unlabelled[d], skip=modules_inputs)
        else:
            scaler = None
        scalers.append(scaler)
        for name in parts:
            parts[name].append(make_dataset(d, idx[name], augment=name == "train"))
        test_speakers[data.spec.language] = sorted({data.speakers[i] for i in idx["test"]})
    datasets = {k: v[0] if len(v) == 1 else ConcatDataset(v) for k, v in parts.items()}
    train_config = config.train
    if config.few_shot:  # every K of a learning curve trains for the same number of steps: those of the whole split
        train_config = replace(train_config, epoch_size=sum(map(len, unlabelled)))
    alphas = [config.language(data.spec.language).alpha if config.train.alpha is None else config.train.alpha for data in datas]

    def make_trainer(train_config: TrainConfig, what: str) -> Trainer:
        torch.manual_seed(seed)  # the refit starts from the same initialisation as the selection fit
        np.random.seed(seed % 2**32)
        model = build_model(config.model, config, [domain_info(data, features) for data in datas])
        encoders = getattr(model, "encoders", None)
        for d, scaler in enumerate(scalers):
            if isinstance(scaler, FeatureScaler) and getattr(encoders, "ge2e", None) is not None and GE2E_FEATURE in scaler.mean:
                # the fine-tuned embedding is standardised with the stored embedding's training statistics of its language
                encoders.ge2e_mean[d].copy_(torch.from_numpy(scaler.mean[GE2E_FEATURE]))
                encoders.ge2e_std[d].copy_(torch.from_numpy(scaler.std[GE2E_FEATURE]))
        return Trainer(model, train_config, [data.classes for data in datas], alphas, seed=seed, description=what)

    trainer = make_trainer(train_config, description)
    result = trainer.fit(datasets["train"], datasets["valid"], datasets["test"])
    if config.train.refit:
        # The number of epochs was chosen on the validation split; now train again on train + valid for exactly
        # that many epochs and test the last one (the validation scores reported stay those of the selection fit).
        refit_config = replace(config.train, epochs=result.best_epoch, selection="last", patience=None)
        trainer = make_trainer(refit_config, f"{description} refit")
        # the validation utterances are training utterances now: augmented like them
        del datasets["train"], parts["train"]
        refit_train = [make_dataset(d, idx["train"] + idx["valid"], augment=True) for d, idx in enumerate(indices)]
        refit = trainer.fit(refit_train[0] if len(refit_train) == 1 else ConcatDataset(refit_train), datasets["valid"],
                            datasets["test"])
        result = replace(result, test=refit.test, state=refit.state, seconds=result.seconds + refit.seconds,
                         history=result.history + [{"refit_epochs": result.best_epoch, "refit_seconds": refit.seconds}])
    # a per-speaker scaler is not part of the model: a new speaker brings its own statistics
    result.state["scalers"] = [{"mean": s.mean, "std": s.std} if isinstance(s, FeatureScaler) else None for s in scalers]
    describe = getattr(trainer.eval_model, "describe", None)  # multi-domain models: gates on the test set
    details = describe(result.test.extras, result.test.domains) if describe else {}
    return RunResult(run, seed, fold, result, test_speakers, details)
