"""Tiny fake corpora in the real layouts. Preparers never decode audio, but the files are valid WAVs anyway."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import numpy as np
import soundfile as sf


def write_wav(path: Path, seconds: float = 0.02, sample_rate: int = 16000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    subtype = {".ogg": "VORBIS", ".flac": "PCM_16", ".wav": "PCM_16"}.get(path.suffix.lower())
    sf.write(path, np.zeros(int(seconds * sample_rate), dtype=np.float32), sample_rate, subtype=subtype)
    return path


def emodb_corpus(root: Path, speakers=("03", "08", "09", "10"), letters="WLEAFTN", takes="ab") -> Path:
    for spk in speakers:
        for letter in letters:
            for take in takes:
                write_wav(root / "wav" / f"{spk}a01{letter}{take}.wav")
    return root


def emovo_corpus(root: Path, speakers=("f1", "f2", "m1"), codes=("dis", "gio", "neu", "pau", "rab", "sor", "tri"),
                 sentences=("b1", "l2")) -> Path:
    for spk in speakers:
        for code in codes:
            for sentence in sentences:
                write_wav(root / spk / f"{code}-{spk}-{sentence}.wav")
    return root


#: CaFE folders as they come, in mixed spellings: NFC accents, NFD accents, no accents, odd case.
CAFE_FOLDERS = {
    "C": unicodedata.normalize("NFC", "Colère"),
    "D": unicodedata.normalize("NFD", "Dégoût"),
    "J": "Joie",
    "N": "Neutre",
    "P": "PEUR",
    "S": "Surprise",
    "T": "Tristesse",
}


def cafe_corpus(root: Path, speakers=("01", "02", "03"), texts=(1, 2)) -> Path:
    for initial, folder in CAFE_FOLDERS.items():
        for spk in speakers:
            for text in texts:
                if initial == "N":
                    write_wav(root / folder / f"{spk}-N-1-{text}.wav")
                    continue
                for intensity, sub in ((1, "Faible"), (2, "Fort")):
                    write_wav(root / folder / sub / f"{spk}-{initial}-{intensity}-{text}.wav")
    return root


def iemocap_corpus(root: Path, sessions=(1, 2), extra_lines: dict | None = None) -> Path:
    """Two dialogs per session; each dialog has utterances labelled neu, hap, exc, ang, sad, fru, xxx.

    ``extra_lines`` maps a session number to raw lines appended to its first dialog's evaluation file.
    """
    labels = ("neu", "hap", "exc", "ang", "sad", "fru", "xxx")
    for n in sessions:
        session = root / f"Session{n}"
        for d, dialog in enumerate((f"Ses0{n}F_impro01", f"Ses0{n}M_script02_1")):
            lines = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
            for i, label in enumerate(labels):
                gender = "FM"[i % 2]
                utt = f"{dialog}_{gender}{i:03d}"
                write_wav(session / "sentences" / "wav" / dialog / f"{utt}.wav")
                lines += [f"[{i + 0.5:.4f} - {i + 1.25:.4f}]\t{utt}\t{label}\t[2.5000, 3.0000, 2.5000]",
                          "C-E1:\tNeutral;\t()", "A-E2:\tval 3; act 2; dom  3;\t()", ""]
            if d == 0 and extra_lines and n in extra_lines:
                lines += extra_lines[n]
            (session / "dialog" / "EmoEvaluation").mkdir(parents=True, exist_ok=True)
            (session / "dialog" / "EmoEvaluation" / f"{dialog}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
            # Per-annotator files live in sub-folders and must not be read as labels.
            (session / "dialog" / "EmoEvaluation" / "Categorical").mkdir(exist_ok=True)
            (session / "dialog" / "EmoEvaluation" / "Categorical" / f"{dialog}_e1_cat.txt").write_text(
                f"{dialog}_F000 :Frustration; ()\n", encoding="utf-8")
    return root


def ravdess_corpus(root: Path, actors=(1, 2, 3, 4), suffix: str = ".flac", statements=(1, 2)) -> Path:
    """RAVDESS speech files as distributed: ``Actor_AA/03-01-EE-II-SS-RR-AA``; neutral at normal intensity only,
    so per actor and statement: neutral 2, every other emotion 4 (2 intensities x 2 repetitions)."""
    for actor in actors:
        for emotion in range(1, 9):
            for intensity in ((1,) if emotion == 1 else (1, 2)):
                for statement in statements:
                    for repetition in (1, 2):
                        name = f"03-01-{emotion:02d}-{intensity:02d}-{statement:02d}-{repetition:02d}-{actor:02d}{suffix}"
                        write_wav(root / f"Actor_{actor:02d}" / name)
    return root
