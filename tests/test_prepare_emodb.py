from collections import Counter

import pytest

from extract.prepare import prepare_corpus
from sercore.errors import DataError
from sercore.manifest import read_manifest

from _prepare_helpers import emodb_corpus, write_wav


def test_emodb_names_map_to_speakers_and_emotions(tmp_path):
    root = emodb_corpus(tmp_path / "emodb")
    prepared = prepare_corpus("emodb", root, manifest_dir=tmp_path / "m")
    rows = read_manifest(prepared.manifest)
    assert len(rows) == 4 * 7 * 2
    by_id = {u.utt_id: u for u in rows}
    assert by_id["03a01Wa"].emotion == "angry" and by_id["03a01Wa"].speaker == "03"
    assert by_id["08a01Lb"].emotion == "boredom"
    assert by_id["09a01Ea"].emotion == "disgust"
    assert by_id["10a01Aa"].emotion == "fear"
    assert by_id["03a01Fa"].emotion == "happy"
    assert by_id["03a01Ta"].emotion == "sad"
    assert by_id["03a01Na"].emotion == "neutral"
    assert {u.language for u in rows} == {"de"}
    assert all(u.path.startswith("/") for u in rows)
    assert Counter(u.emotion for u in rows) == {e: 8 for e in ("angry", "boredom", "disgust", "fear", "happy", "sad", "neutral")}


def test_emodb_unknown_letter_names_the_file(tmp_path):
    root = emodb_corpus(tmp_path / "emodb")
    bad = write_wav(root / "wav" / "03a01Xa.wav")
    with pytest.raises(DataError, match="unknown EmoDB emotion letter 'X'") as err:
        prepare_corpus("emodb", root, manifest_dir=tmp_path / "m")
    assert err.value.where == str(bad)
