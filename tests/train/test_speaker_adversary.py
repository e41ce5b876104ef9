"""Speaker-adversarial training (``train --speaker-adversarial``; train/losses.py, train/network_trainer.py): the
reversed gradient, the loss of rows without a speaker, mixup, and that only training speakers reach the adversary."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests._train_helpers import base_args, make_stores, one_error_line, run_train
from train.augment import mixup
from train.config import ConfigError, ExperimentConfig, TrainConfig
from train.losses import SpeakerAdversary, reverse_gradient
from train.model_io import Example, ModelOutput, collate
from train.network_trainer import Trainer


def test_reverse_gradient_is_the_identity_forward_and_minus_scale_times_the_gradient_backward():
    x = torch.randn(4, 3, requires_grad=True)
    y = reverse_gradient(x, 0.3)
    assert torch.equal(y, x)
    weights = torch.randn(4, 3)
    (y * weights).sum().backward()
    assert torch.allclose(x.grad, -0.3 * weights)


def test_the_speaker_loss_leaves_out_rows_without_a_speaker():
    logits = torch.randn(5, 3)
    speakers = torch.tensor([0, -1, 2, -1, 1])
    rows = speakers >= 0
    assert torch.isclose(SpeakerAdversary.loss(logits, speakers), F.cross_entropy(logits[rows], speakers[rows]))
    none = SpeakerAdversary.loss(logits.requires_grad_(), torch.full((5,), -1))
    assert float(none.detach()) == 0.0 and none.requires_grad  # in the graph, not nan
    with pytest.raises(ValueError, match="at least 2"):
        SpeakerAdversary(4, 1, 0.5)


def _batch(speakers=(0, 1, 2, -1, 1, 0)):
    examples = [Example(f"u{i}", {"ge2e": torch.full((3,), float(i))}, i % 2, 0, s) for i, s in enumerate(speakers)]
    return collate(examples)


def test_the_representation_gets_the_adversary_gradient_reversed_and_the_adversary_gets_it_as_is():
    batch = _batch()
    trainer = Trainer(torch.nn.Linear(3, 2), TrainConfig(progress=False, speaker_adversarial=0.3), [["a", "b"]],
                      alphas=[0.0], n_speakers=3)
    rep = torch.randn(len(batch), 4, requires_grad=True)
    trainer.speaker_loss(ModelOutput(torch.zeros(len(batch), 2), rep), batch).backward()
    adversary = trainer.adversary
    reference = rep.detach().clone().requires_grad_()
    rows = batch.speakers >= 0
    params = list(adversary.parameters())
    adv_grads = [p.grad.clone() for p in params]
    for p in params:
        p.grad = None
    F.cross_entropy(adversary.classifier(reference)[rows], batch.speakers[rows]).backward()
    assert torch.allclose(rep.grad, -0.3 * reference.grad, atol=1e-6)  # the representation: reversed and scaled
    for got, p in zip(adv_grads, params):
        assert torch.allclose(got, p.grad, atol=1e-6)  # the speaker classifier: descends the loss as it is
    assert rep.grad[3].abs().sum() == 0  # the row without a speaker gives no gradient


def test_a_mixup_batch_mixes_the_speaker_loss_like_the_labels():
    batch = _batch((0, 1, 2, 0, 1, 2))
    trainer = Trainer(torch.nn.Linear(3, 2), TrainConfig(progress=False, speaker_adversarial=1.0, mixup=0.4),
                      [["a", "b"]], alphas=[0.0], n_speakers=3)
    mixed = mixup(batch, 0.4, np.random.default_rng(2))
    assert torch.equal(mixed.batch.speakers, batch.speakers)
    output = ModelOutput(torch.zeros(len(batch), 2), torch.randn(len(batch), 4))
    got = trainer.speaker_loss(output, batch, mixed)
    logits = trainer.adversary(output.representation)
    expected = (mixed.lam * F.cross_entropy(logits, batch.speakers)
                + (1 - mixed.lam) * F.cross_entropy(logits, batch.speakers[mixed.partner]))
    assert torch.isclose(got, expected)


def test_without_the_option_there_is_no_adversary_and_no_speaker_loss():
    trainer = Trainer(torch.nn.Linear(3, 2), TrainConfig(progress=False), [["a", "b"]], alphas=[0.0], n_speakers=3)
    batch = _batch()
    loss = trainer.speaker_loss(ModelOutput(torch.zeros(len(batch), 2), torch.randn(len(batch), 4)), batch)
    assert float(loss) == 0.0 and trainer.adversary is None and trainer.n_speakers == 0


def test_only_the_training_speakers_reach_the_adversary(tmp_path, monkeypatch):
    stores = make_stores(tmp_path / "features", speakers=6, per_class=12)
    seen = []
    fit = Trainer.fit

    def spy(self, train, valid, test):
        seen.append((self.n_speakers, train, valid, test))
        return fit(self, train, valid, test)

    monkeypatch.setattr(Trainer, "fit", spy)
    out = tmp_path / "out"
    result = run_train(*base_args(stores, out, "--protocol", "speaker", "--folds", "3", "--epochs", "2",
                                  "--speaker-adversarial", "0.5", "--refit"))
    assert result.exit_code == 0, result.output
    (n_speakers, train, valid, test), (n_refit, refit_train, _, _) = seen[:2]  # fold 0 and its refit
    speaker_of = {}  # utterance -> speaker, as the synthetic stores name them (i mod 6)
    for part in (train, valid, test, refit_train):
        for utt in part.utt_ids:
            speaker_of[utt] = int(utt.rsplit("_", 1)[1]) % 6
    train_speakers = {speaker_of[u] for u in train.utt_ids}
    assert not train_speakers & {speaker_of[u] for u in test.utt_ids + valid.utt_ids}  # the speaker protocol
    assert n_speakers == len(train_speakers) == len(set(train.speakers)) and min(train.speakers) >= 0
    # one index per speaker, the same for all of that speaker's utterances
    assert len({(speaker_of[u], s) for u, s in zip(train.utt_ids, train.speakers)}) == n_speakers
    assert set(valid.speakers) == set(test.speakers) == {-1}  # nothing of a validation or test speaker
    # the refit trains on train + valid: the validation speakers become training speakers of its adversary
    assert n_refit == len({speaker_of[u] for u in refit_train.utt_ids}) > n_speakers
    record = json.loads((out / "runs" / "run0.json").read_text())
    speaker_ce = [h["train_speaker"] for h in record["history"] if "train_speaker" in h]
    assert len(speaker_ce) == 2 and all(0 < x < 2 * math.log(n_speakers) for x in speaker_ce)


def test_the_option_is_refused_where_no_network_is_trained(tmp_path):
    with pytest.raises(ConfigError, match="speaker_adversarial"):
        ExperimentConfig(domains=["de"], model="logreg", train=TrainConfig(speaker_adversarial=0.5))
    stores = make_stores(tmp_path / "features")
    result = run_train(*base_args(stores, tmp_path / "out", "--speaker-adversarial", "-1"))
    assert result.exit_code != 0 and "--speaker-adversarial" in one_error_line(result.output)


def test_the_tower_hidden_layer_is_what_its_output_layer_classifies():
    from train.models.tower import ClassificationTower

    tower = ClassificationTower(6, 3, units=8).eval()
    x = torch.randn(5, 6)
    hidden = tower.hidden(x)
    assert hidden.shape == (5, 8) and torch.equal(tower.output(hidden), tower(x))
    assert [k for k in tower.state_dict()] == ["net.0.weight", "net.0.bias", "net.3.weight", "net.3.bias",
                                               "net.6.weight", "net.6.bias"]  # the bundles' names, unchanged
