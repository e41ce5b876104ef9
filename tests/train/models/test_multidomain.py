"""Multi-domain models (base, sb, omoe, mmoe, nas): gates, parameter sharing, isolation of the towers, CLI."""

import csv
import json

import pytest
import torch
from click.testing import CliRunner

from sercore.errors import DataError, OptionError
from train.cli import main
from train.config import ExperimentConfig, TrainConfig
from train.model_io import Batch, DomainInfo
from train.models import build_model
from train.config import MULTIDOMAIN_MODELS
from train.network_trainer import Trainer
from tests._train_helpers import make_stores

DE = ["neutral", "happy", "angry", "sad"]
IT = ["neutral", "happy", "angry", "sad", "fear"]
KINDS = {"ge2e": "embedding", "mfcc": "sequence"}
DIMS = {"ge2e": 5, "mfcc": 6}


def _domains():
    return [DomainInfo("de", DE, KINDS, DIMS), DomainInfo("it", IT, KINDS, DIMS)]


def _model(name, **md):
    config = ExperimentConfig(domains=["de", "it"])
    for k, v in md.items():
        setattr(config.multidomain, k, v)
    torch.manual_seed(0)
    return build_model(name, config, _domains())


def _batch(domains, seed=0):
    g = torch.Generator().manual_seed(seed)
    n = len(domains)
    lengths = torch.randint(3, 9, (n,), generator=g)
    mfcc = torch.randn(n, int(lengths.max()), 6, generator=g)
    domains = torch.tensor(domains)
    labels = torch.tensor([int(torch.randint(len(DE if d == 0 else IT), (1,), generator=g)) for d in domains.tolist()])
    return Batch({"mfcc": mfcc}, {"mfcc": lengths}, {"ge2e": torch.randn(n, 5, generator=g)}, labels, domains,
                 [f"u{i}" for i in range(n)])


@pytest.mark.parametrize("name", MULTIDOMAIN_MODELS)
def test_outputs_shapes_padding_and_gates_summing_to_one(name):
    model = _model(name).eval()
    batch = _batch([0, 1, 1, 0, 1, 0])
    out = model(batch)
    assert out.logits.shape == (6, 5) and out.representation.shape == (6, 256)
    de_rows = batch.domains == 0
    assert torch.isinf(out.logits[de_rows, 4]).all() and torch.isfinite(out.logits[de_rows, :4]).all()
    assert torch.isfinite(out.logits[~de_rows]).all()
    gates = out.extras["gates"]
    assert gates.shape == (6, 2) and (gates >= 0).all()
    assert torch.allclose(gates.sum(-1), torch.ones(6), atol=1e-6)
    if name in ("base", "sb"):
        assert torch.allclose(gates, torch.full_like(gates, 0.5))


def test_gates_per_language_are_separate_parameters_for_mmoe_and_nas_and_one_for_omoe():
    for name in ("mmoe", "nas"):
        gates = _model(name).gates
        g0, g1 = gates.gate(0).linear.weight, gates.gate(1).linear.weight
        assert g0 is not g1 and g0.data_ptr() != g1.data_ptr() and not torch.equal(g0, g1)
    omoe = _model("omoe")
    assert omoe.gates.gate(0) is omoe.gates.gate(1) and len(list(omoe.gates.parameters())) == 1
    assert _model("sb").gates is None and _model("base").gates is None


def test_same_selector_gets_different_weights_per_language_only_with_separate_gates():
    batch = _batch([0, 1])
    batch.embeddings["ge2e"][1] = batch.embeddings["ge2e"][0]  # same selector x on both rows
    for name, differ in (("omoe", False), ("mmoe", True), ("nas", True)):
        gates = _model(name).eval()(batch).extras["gates"]
        assert (not torch.allclose(gates[0], gates[1])) == differ, name


def test_towers_and_nas_architecture_per_language():
    sb = _model("sb")
    assert len(sb.towers) == 2 and sb.tower(0) is not sb.tower(1)
    assert sb.tower(0).n_classes == 4 and sb.tower(1).n_classes == 5
    base = _model("base")
    assert len(base.towers) == 1 and base.tower(0) is base.tower(1) and base.union == ["neutral", "happy", "angry", "sad", "fear"]
    nas = _model("nas")
    assert nas.nas.gates.log_alpha.shape == (2, 2, 2)  # one architecture per language over M = 2 experts


def test_base_routes_each_language_to_its_labels_in_the_union_tower():
    model = _model("base").eval()
    batch = _batch([0, 1])
    out = model(batch)
    union = model.tower(0)(out.representation)
    assert torch.allclose(out.logits[1], union[1])  # Italian has all five union labels, in vocabulary order
    assert torch.allclose(out.logits[0, :4], union[0, [model.union.index(c) for c in DE]])


def _trainer(model):
    return Trainer(model, TrainConfig(progress=False), [DE, IT], [0.01, 0.01], seed=0)


@pytest.mark.parametrize("name", ["sb", "mmoe", "nas"])
def test_one_languages_loss_does_not_reach_another_languages_tower_or_gate(name):
    model = _model(name).train()
    trainer = _trainer(model)
    # one step on both languages first, so that AdamW has moments for every parameter
    mixed = _batch([0, 1] * 8)
    loss, _, _ = trainer.loss(model(mixed), mixed)
    loss.backward()
    trainer.optimizer.step()
    trainer.optimizer.zero_grad(set_to_none=True)
    italian_tower = {k: v.clone() for k, v in model.tower(1).state_dict().items()}
    german_tower = {k: v.clone() for k, v in model.tower(0).state_dict().items()}
    only_de = _batch([0] * 12, seed=1)
    loss, _, _ = trainer.loss(model(only_de), only_de)
    loss.backward()
    for p in model.tower(1).parameters():
        assert p.grad is None or torch.all(p.grad == 0)
    if model.gates is not None:
        for p in model.gates.gate(1).parameters():
            assert p.grad is None or torch.all(p.grad == 0)
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.gates.gate(0).parameters())
    if model.nas is not None:
        grad = model.nas.gates.log_alpha.grad
        assert torch.all(grad[1] == 0) and grad[0].abs().sum() > 0
    trainer.optimizer.step()
    assert all(torch.equal(v, model.tower(1).state_dict()[k]) for k, v in italian_tower.items())
    assert not all(torch.equal(v, model.tower(0).state_dict()[k]) for k, v in german_tower.items())


def test_nas_penalty_is_the_weighted_expected_l0_in_training_only():
    model = _model("nas", l0_weight=0.1).train()
    batch = _batch([0, 1])
    expected = 0.1 * float(model.nas.expected_l0().detach())
    assert float(model(batch).penalty.detach()) == pytest.approx(expected)
    assert model.eval()(batch).penalty == 0.0
    assert _model("nas").train()(batch).penalty == 0.0  # off by default


def test_missing_selector_and_mismatched_features_are_refused():
    config = ExperimentConfig(domains=["de", "it"])
    config.multidomain.selector = "byol"
    with pytest.raises(OptionError, match="byol"):
        build_model("mmoe", config, _domains())
    build_model("sb", config, _domains())  # no gate, no selector needed
    other = [DomainInfo("de", DE, KINDS, DIMS), DomainInfo("it", IT, KINDS, {"ge2e": 5, "mfcc": 7})]
    with pytest.raises(DataError, match="mfcc"):
        build_model("nas", ExperimentConfig(domains=["de", "it"]), other)


def test_selector_can_be_left_out_of_the_experts():
    model = _model("mmoe", selector_expert=False)
    assert model.experts == ["mfcc"] and model.eval()(_batch([0, 1])).extras["gates"].shape == (2, 1)


@pytest.fixture()
def two_stores(tmp_path):
    root = tmp_path / "features"
    make_stores(root, dataset="synth", language="de", per_class=12, speakers=3)
    make_stores(root, dataset="synth_it", language="it", emotions=tuple(IT), per_class=12, speakers=3, seed=1)
    return root


@pytest.mark.slow
def test_cli_compares_every_model_and_writes_table_and_gate_plots(two_stores, tmp_path):
    out = tmp_path / "cmp"
    r = CliRunner().invoke(main, ["--domains", "de=synth,it=synth_it", "--features-dir", str(two_stores), "--epochs", "1",
                                  "--seeds", "1", "--model", ",".join(MULTIDOMAIN_MODELS), "--out", str(out), "--quiet",
                                  "--no-checkpoints"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    comp = json.loads((out / "comparison.json").read_text())
    assert list(comp["models"]) == list(MULTIDOMAIN_MODELS) and comp["languages"] == ["de", "it"]
    rows = list(csv.DictReader((out / "comparison.csv").open()))
    assert [(row["model"], row["language"]) for row in rows] == [(m, lang) for m in MULTIDOMAIN_MODELS for lang in ("de", "it")]
    for name in MULTIDOMAIN_MODELS:
        metrics = json.loads((out / name / "metrics.json").read_text())
        for lang in ("de", "it"):  # the table holds what the run folders measured
            assert float(rows[[r["model"] for r in rows].index(name) + (lang == "it")]["ua_mean"]) == \
                pytest.approx(metrics["domains_summary"][lang]["test_ua"]["mean"], abs=1e-4)
        if name in ("base", "sb"):
            assert "mixing" not in metrics and not (out / name / "gates.png").exists()
            continue
        gates = metrics["mixing"]["gates"]
        for lang in ("de", "it"):
            assert sum(gates[lang][f]["mean"] for f in ("ge2e", "mfcc")) == pytest.approx(1.0, abs=1e-5)
        assert (out / name / "gates.png").stat().st_size > 1000 and (out / name / "gates.csv").exists()
    nas = json.loads((out / "nas" / "metrics.json").read_text())["mixing"]["nas"]
    assert set(nas) == {"de", "it"} and len(nas["de"]["p_open"]["mean"]) == 2
    assert (out / "nas" / "nas.png").stat().st_size > 1000 and (out / "nas" / "nas.csv").exists()
    assert (out / "gates.png").stat().st_size > 1000 and "| MMoE |" in (out / "comparison.md").read_text()


def test_cli_single_model_and_refusals(two_stores, tmp_path):
    common = ["--domains", "de=synth,it=synth_it", "--features-dir", str(two_stores), "--epochs", "1", "--seeds", "1", "--quiet"]
    r = CliRunner().invoke(main, [*common, "--model", "single", "--out", str(tmp_path / "s")])
    assert r.exit_code == 2 and "multi-domain" in r.output
    r = CliRunner().invoke(main, [*common, "--model", "mmoe,bogus", "--out", str(tmp_path / "b")])
    assert r.exit_code == 2 and "bogus" in r.output
    r = CliRunner().invoke(main, [*common, "--model", "mmoe", "--selector", "byol", "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "byol" in r.output


@pytest.mark.parametrize("name", ["sb", "nas"])
def test_encoding_each_languages_rows_apart_changes_nothing(name):
    model = _model(name).eval()
    batch = _batch([0, 1, 1, 0, 1, 0])
    split = model(batch)
    model.split_by_domain = False
    joint = model(batch)
    assert torch.allclose(split.logits, joint.logits, atol=1e-5)
    assert torch.allclose(split.representation, joint.representation, atol=1e-5)


def test_a_bias_free_gate_cannot_move_its_languages_mean_weights_on_a_standardised_selector_and_a_biased_one_can():
    # the selector is standardised per language (mean 0 over its training rows): a bias-free gate's mean logits
    # are W * 0 = 0, so fitting the mean weights to (0.8, 0.2) fails without b and succeeds with it
    from train.models.gates import SoftmaxGate

    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 5, generator=g)
    x = (x - x.mean(0)) / x.std(0)
    target = torch.tensor([0.8, 0.2])
    reached = {}
    for bias in (False, True):
        torch.manual_seed(0)
        gate = SoftmaxGate(5, 2, bias=bias)
        assert (gate.linear.bias is not None) == bias
        assert torch.allclose(gate.linear(x).mean(0), torch.zeros(2), atol=1e-5)  # b starts at 0
        opt = torch.optim.Adam(gate.parameters(), lr=0.05)
        for _ in range(300):
            opt.zero_grad()
            loss = ((gate(x).mean(0) - target) ** 2).sum()
            loss.backward()
            opt.step()
        reached[bias] = float(gate(x).mean(0)[0].detach())
    assert reached[True] == pytest.approx(0.8, abs=0.01)
    assert reached[False] < 0.7  # only through the softmax's curvature, by making the logits large


def test_gate_bias_and_gate_lr_scale_reach_the_gates_of_the_gated_models_only():
    for name in ("omoe", "mmoe", "nas"):
        model = _model(name, gate_bias=True, gate_lr_scale=20.0)
        biases = [model.gates.gate(k).linear.bias for k in range(2)]
        assert all(b is not None and torch.equal(b, torch.zeros(2)) for b in biases), name
        rates = {id(p): g["lr"] for g in _trainer(model).optimizer.param_groups for p in g["params"]}
        assert all(rates[id(p)] == pytest.approx(0.02) for p in model.gates.parameters()), name
        assert rates[id(model.tower(0).net[0].weight)] == pytest.approx(1e-3)
    assert _model("mmoe").gates.gate(0).linear.bias is None  # the paper's gate: no bias
    assert _model("sb", gate_bias=True, gate_lr_scale=20.0).gates is None


def test_gate_init_starts_every_languages_gate_at_the_given_weights():
    from train.config import ConfigError, MultiDomainConfig
    from train.models.multidomain import initial_weights

    model = _model("mmoe", gate_bias=True, gate_init={"mfcc": 0.8}).eval()
    x = torch.zeros(3, 5)  # a selector of 0 (its mean over a language's rows when standardised) gets exactly init
    for k in range(2):
        assert model.experts == ["ge2e", "mfcc"]
        assert torch.allclose(model.gates.gate(k)(x), torch.tensor([[0.2, 0.8]] * 3), atol=1e-6)
    assert initial_weights(["a", "b", "c"], {"b": 0.5}) == [0.25, 0.5, 0.25] and initial_weights(["a"], {}) is None
    with pytest.raises(OptionError, match="byol"):
        initial_weights(["a", "b"], {"byol": 0.5})
    assert initial_weights(["a", "b"], {"a": 0.3, "b": 0.7}) == [0.3, 0.7]  # every expert named: their sum must be 1
    with pytest.raises(OptionError, match="sum to 1"):
        initial_weights(["a", "b"], {"a": 0.3, "b": 0.6})
    with pytest.raises(ConfigError, match="gate bias"):
        MultiDomainConfig(gate_init={"mfcc": 0.6})
    with pytest.raises(ConfigError, match="gate_init.mfcc"):
        MultiDomainConfig(gate_bias=True, gate_init={"mfcc": 1.0})


def test_nas_lr_scale_gives_the_connection_gates_their_own_learning_rate():
    model = _model("nas", nas_lr_scale=50.0)
    trainer = _trainer(model)
    rates = {id(p): g["lr"] for g in trainer.optimizer.param_groups for p in g["params"]}
    assert rates[id(model.nas.gates.log_alpha)] == pytest.approx(0.05)
    assert rates[id(model.nas.weight)] == pytest.approx(1e-3) and rates[id(model.tower(0).net[0].weight)] == pytest.approx(1e-3)
    assert sum(len(g["params"]) for g in trainer.optimizer.param_groups) == len(list(model.parameters())) + 4  # + 2 x (w, b) aux
    default = _trainer(_model("nas"))
    assert len(default.optimizer.param_groups) == 1
