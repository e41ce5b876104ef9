"""IEMOCAP (English), the usual four-class set.

Layout: ``<root>/Session1..5/dialog/EmoEvaluation/<dialog>.txt`` hold one line per utterance,
``[6.2901 - 8.2357]<TAB>Ses01F_impro01_F000<TAB>neu<TAB>[2.5000, 2.5000, 2.5000]``; the audio is
``<root>/SessionN/sentences/wav/<dialog>/<utterance>.wav``. Kept: neutral, happy, excited, angry, sad,
and, as the usual four-class protocol does, excited merged into happy (:data:`MERGES`; the preparation
summary reports it): 5,531 utterances in the full corpus. Every other label (frustrated, surprised,
fear, disgust, other, ``xxx`` = no agreement) is counted as skipped.

Speaker: the session plus the gender of the person speaking, which is the first letter of the part
after the last underscore (``Ses01F_impro01_M003`` is spoken by the man of session 1: ``Ses01M``).
"""

from __future__ import annotations

import re
from pathlib import Path

from sercore.errors import DataError

from .base import Recording, Scan, audio_files, require_dir, require_recordings

LANGUAGE = "en"

KEPT: dict[str, str] = {"neu": "neutral", "hap": "happy", "exc": "excited", "ang": "angry", "sad": "sad"}
#: The four-class protocol's semantic merge (Busso et al. 2008 and most IEMOCAP papers since): applied and
#: reported by :func:`extract.prepare.prepare_corpus`, like a user's ``--merge``.
MERGES: dict[str, str] = {"excited": "happy"}
#: Labels of the corpus that the four-class protocol leaves out.
LEFT_OUT = ("fru", "sur", "fea", "dis", "oth", "xxx")

_LINE = re.compile(r"^\[(?P<start>[\d.]+)\s*-\s*(?P<end>[\d.]+)\]\t(?P<utt>\S+)\t(?P<label>\S+)\t")
_UTT = re.compile(r"^(?P<session>Ses\d+)[FM]_(?P<dialog_rest>.+)_(?P<gender>[FM])\d+$")


def _speaker(utt_id: str, where: str) -> str:
    match = _UTT.match(utt_id)
    if match is None:
        raise DataError(where, f"utterance id {utt_id!r} is not like Ses01F_impro01_M003")
    return match["session"] + match["gender"]


def scan(root: str | Path, **_) -> Scan:
    root = require_dir(root)
    sessions = sorted(p for p in root.iterdir() if p.is_dir() and re.fullmatch(r"Session\d+", p.name))
    if not sessions:
        raise DataError(root, "no Session1..Session5 folders: not an IEMOCAP root")
    result = Scan()
    labelled: set[Path] = set()
    for session in sessions:
        evaluations = sorted((session / "dialog" / "EmoEvaluation").glob("*.txt"))
        if not evaluations:
            raise DataError(session / "dialog" / "EmoEvaluation", "no label files (*.txt)")
        for txt in evaluations:
            try:
                lines = txt.read_text(encoding="utf-8", errors="strict").splitlines()
            except (OSError, UnicodeDecodeError) as exc:
                raise DataError(txt, f"unreadable label file ({exc})") from None
            for number, line in enumerate(lines, 1):
                match = _LINE.match(line)
                if match is None:
                    continue  # headers, blank lines and the annotators' detail lines ("C-E1: ...")
                utt, label = match["utt"], match["label"]
                where = f"{txt}:{number}"
                if label not in KEPT and label not in LEFT_OUT:
                    raise DataError(where, f"unknown IEMOCAP label {label!r} (known: {', '.join([*KEPT, *LEFT_OUT])})")
                audio = session / "sentences" / "wav" / utt.rsplit("_", 1)[0] / f"{utt}.wav"
                labelled.add(audio)
                if label not in KEPT:
                    result.skip(audio, f"label {label!r} is outside the 4-class set")
                    continue
                if not audio.is_file():
                    raise DataError(audio, f"audio of {utt} (labelled in {txt.name}) is missing")
                result.recordings.append(Recording(
                    utt_id=utt, path=audio, speaker=_speaker(utt, where), language=LANGUAGE, emotion=KEPT[label],
                ))
        wav_root = session / "sentences" / "wav"
        for audio in audio_files(wav_root) if wav_root.is_dir() else []:
            if audio not in labelled:
                result.skip(audio, "no label line in dialog/EmoEvaluation")
    return require_recordings(result, root, "Session*/dialog/EmoEvaluation/*.txt and Session*/sentences/wav/")
