"""Tiny fake corpora in the real layouts. Preparers never decode audio, but the files are valid WAVs anyway."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf


def write_wav(path: Path, seconds: float = 0.05, sample_rate: int = 16000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(int(seconds * sample_rate), dtype=np.float32), sample_rate, subtype="PCM_16")
    return path


def emodb_corpus(root: Path, speakers=("03", "08", "09", "10"), letters="WLEAFTN", takes="ab") -> Path:
    for spk in speakers:
        for letter in letters:
            for take in takes:
                write_wav(root / "wav" / f"{spk}a01{letter}{take}.wav")
    return root
