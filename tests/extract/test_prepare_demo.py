"""The generated demo corpus: real synthesised speech, acted emotions, speakers, and its manifest."""

from collections import Counter

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

pytest.importorskip("espeakng_loader", reason="the demo corpus needs the optional extra mgser[demo] (eSpeak NG, GPL-3.0)")

from extract.cli import main as extract_main  # noqa: E402
from extract.prepare import prepare_corpus
from extract.prepare.demo import DemoConfig, generate
from sercore.errors import DataError
from sercore.manifest import read_manifest
from sercore.splits import check_disjoint

SMALL = DemoConfig(languages=("en", "fr"), emotions=("neutral", "angry", "sad"), variants=("m1", "f2", "m3"),
                   sentences_per_language=1)


def rms(x):
    return float(np.sqrt(np.mean(x ** 2)))


def test_small_demo_is_speech_with_acted_prosody(tmp_path):
    root = generate(tmp_path / "demo", SMALL, progress=False)
    files = sorted(root.rglob("*.wav"))
    assert len(files) == 2 * 3 * 3
    for path in files:
        audio, rate = sf.read(path)
        assert rate == 16000 and audio.ndim == 1
        assert 0.5 < len(audio) / rate < 4.0
        assert rms(audio) > 0.01
    for speaker in ("en-m1", "fr-f2"):
        lang = speaker[:2]
        take = {e: sf.read(root / lang / speaker / f"{speaker}-{e}-s1.wav")[0] for e in ("neutral", "angry", "sad")}
        assert len(take["sad"]) > 1.2 * len(take["angry"])  # sadness is spoken slowly
        assert rms(take["angry"]) > 1.5 * rms(take["sad"])  # anger loudly
    # Different voices are different signals, not copies.
    a = sf.read(root / "en" / "en-m1" / "en-m1-neutral-s1.wav")[0]
    b = sf.read(root / "en" / "en-f2" / "en-f2-neutral-s1.wav")[0]
    assert len(a) != len(b) or not np.allclose(a, b)


def test_demo_is_reused_regenerated_on_change_and_never_written_into_foreign_folders(tmp_path):
    root = generate(tmp_path / "demo", SMALL, progress=False)
    one = root / "en" / "en-m1" / "en-m1-sad-s1.wav"
    stamp = one.stat().st_mtime_ns
    generate(root, SMALL, progress=False)
    assert one.stat().st_mtime_ns == stamp
    generate(root, DemoConfig(**{**SMALL.__dict__, "seed": 1}), progress=False)
    assert one.stat().st_mtime_ns != stamp
    foreign = tmp_path / "my_corpus"
    foreign.mkdir()
    (foreign / "keep.wav").write_bytes(b"")
    with pytest.raises(DataError, match="is not a demo corpus"):
        generate(foreign, SMALL, progress=False)
    assert [p.name for p in foreign.iterdir()] == ["keep.wav"]


def test_demo_scan_reports_missing_files(tmp_path):
    root = generate(tmp_path / "demo", SMALL, progress=False)
    (root / "fr" / "fr-m3" / "fr-m3-angry-s1.wav").unlink()
    with pytest.raises(DataError, match="demo file missing"):
        prepare_corpus("demo", root, config=SMALL, progress=False, manifest_dir=tmp_path / "m")


@pytest.mark.slow
def test_default_demo_through_the_cli_both_protocols(tmp_path):
    runner = CliRunner()
    for protocol in ("random", "speaker"):
        result = runner.invoke(extract_main, ["prepare", "--dataset", "demo", "--root", str(tmp_path / "demo"),
                                              "--protocol", protocol, "--manifest-dir", str(tmp_path / "m")])
        assert result.exit_code == 0, result.output
        rows = read_manifest(tmp_path / "m" / "demo.csv")
        assert len(rows) == 240
        assert Counter(u.language for u in rows) == {"en": 80, "de": 80, "fr": 80}
        assert len({u.speaker for u in rows}) == 12
        per_class = Counter((u.language, u.emotion) for u in rows)
        assert set(per_class.values()) == {16} and len(per_class) == 15
        check_disjoint([u.utt_id for u in rows], [u.speaker for u in rows], [u.split for u in rows], protocol)
        # Splits are drawn within each language, so every domain has all three.
        assert len({(u.language, u.split) for u in rows}) == 9
