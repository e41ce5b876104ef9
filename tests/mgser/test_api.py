"""The Python API (mgser.load_model(...).predict(...)) on a bundle trained here, against the predict command."""

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

import mgser
from predict.cli import main as predict_main
from sercore.errors import DataError
from tests.predict.test_predict import EMOTIONS, SR, trained  # noqa: F401 - trained is a fixture (a bundle built here)


@pytest.fixture(scope="module")
def model(trained):  # noqa: F811 - the fixture imported above
    return mgser.load_model(trained[0])


def test_predict_gives_the_label_and_probabilities_the_command_prints(trained, model):  # noqa: F811
    bundle, wav, flac, _ = trained
    r = CliRunner().invoke(predict_main, ["--model", str(bundle), str(wav), str(flac), "--jsonl", "--quiet"],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    expected = [json.loads(s) for s in r.stdout.splitlines() if s.startswith("{")]
    one = model.predict(wav)
    assert isinstance(one, mgser.EmotionPrediction) and one.source == str(wav)
    assert list(one.probabilities) == model.classes and set(model.classes) == set(EMOTIONS)
    assert one.label == max(one.probabilities, key=one.probabilities.get)
    results = model.predict([str(wav), flac])
    assert [x.source for x in results] == [str(wav), str(flac)]
    for got, want in zip(results, expected):
        assert got.label == want["emotion"]
        assert got.probabilities == pytest.approx(want["probabilities"], abs=2e-6)
    # one at a time or in a batch: the same answer (batched float32 arithmetic may differ in the last bit)
    assert results[0].label == one.label and results[0].source == one.source
    assert results[0].probabilities == pytest.approx(one.probabilities, abs=1e-6)


def test_samples_in_memory_give_the_answer_of_their_file(trained, model):  # noqa: F811
    _, wav, flac, _ = trained
    from_file, from_flac = model.predict(wav), model.predict(flac)  # one at a time, as the arrays below
    samples, sr = sf.read(wav)  # float64 (frames,)
    assert model.predict((samples, sr)) == mgser.EmotionPrediction(from_file.label, from_file.probabilities, "<array>")
    pcm, sr = sf.read(wav, dtype="int16")  # integer PCM, scaled as the decoder scales it
    assert model.predict((pcm, sr)).probabilities == from_file.probabilities
    stereo, sr48 = sf.read(flac)  # (frames, 2) at 48 kHz
    assert stereo.ndim == 2 and sr48 == 48000
    got = model.predict([(stereo, np.int64(sr48))])[0]
    assert got.source == "<array 0>" and got.probabilities == pytest.approx(from_flac.probabilities, abs=1e-6)


@pytest.mark.parametrize("audio, problem", [
    ((np.zeros(SR // 100, dtype=np.float32) + 0.1, SR), "too short"),
    ((np.full(SR, np.nan, dtype=np.float32), SR), "NaN"),
    ((np.zeros((2, SR), dtype=np.float32) + 0.1, SR), "expected (frames, channels)"),
    ((np.zeros(SR, dtype=np.float32) + 0.1, 16000.5), "not a whole number"),
    ((np.zeros(SR, dtype=np.float32) + 0.1, 100), "sample rate 100 Hz outside"),
])
def test_unusable_samples_are_refused_naming_the_input(model, audio, problem):
    with pytest.raises(DataError, match="^<array>: .*" + problem.replace("(", r"\(").replace(")", r"\)")):
        model.predict(audio)


def test_a_bad_item_of_a_list_is_named_by_its_place(trained, model, tmp_path):  # noqa: F811
    missing = tmp_path / "missing.wav"
    with pytest.raises(DataError, match=f"^{missing}: audio file not found"):
        model.predict([trained[1], missing])
    with pytest.raises(DataError, match=r"^<array 1>: .*NaN"):
        model.predict([trained[1], (np.full(SR, np.nan), SR)])
    with pytest.raises(TypeError, match="expected a path"):
        model.predict(42)


def test_importing_mgser_does_not_load_torch():
    """The API is imported on first use: `mgser --help` and `mgser prepare` stay fast."""
    code = "import sys, mgser; assert 'torch' not in sys.modules; assert callable(mgser.load_model)"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_weights_keywords_are_the_registrys_setting_keys(tmp_path):
    """load_model takes each extractor setting by its key and names an unknown keyword (before reading anything)."""
    from sercore.bundle import BundleError

    with pytest.raises(TypeError, match=r"'byol_weights'.*byol_checkpoint"):
        mgser.load_model(tmp_path / "none.bundle", byol_weights="b.pth")
    with pytest.raises(BundleError):  # accepted: the missing bundle is what fails
        mgser.load_model(tmp_path / "none.bundle", wav2vec_checkpoint="w.pt", wav2vec_layer=3,
                         allosaurus_model="a", byol_checkpoint="b.pth")
