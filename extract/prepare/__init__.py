"""Corpus preparers: scan a corpus in its own layout and write ``data_manifests/<name>.csv``.

One module per layout (``emodb``, ``emovo``, ``cafe``, ``iemocap``, ``folder``, ``csvlist``, ``demo``), each
with ``scan(root, ...) -> Scan``. :func:`prepare_corpus` turns a scan into manifest rows: it checks ids are
unique, assigns the split of the chosen protocol *within each language* (stratified by emotion for the
paper's random protocol; whole speakers for the speaker-independent one), guards against leakage, writes
the manifest atomically and records skipped files next to it.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import Callable

from sercore.errors import DataError, OptionError
from sercore.labels import sorted_labels
from sercore.manifest import SPLITS, Utterance, manifest_path, write_manifest
from sercore.splits import PROTOCOLS, check_disjoint, random_split, speaker_split

from .base import Recording, Scan, Skipped

#: Layout name -> module holding its ``scan``. Language is fixed by the corpus except for folder/csv.
LAYOUTS: dict[str, str] = {
    "emodb": "emodb", "emovo": "emovo", "cafe": "cafe", "iemocap": "iemocap",
    "folder": "folder", "csv": "csvlist", "demo": "demo",
}
#: Layouts that hold a user corpus: the language must be given.
USER_LAYOUTS = ("folder", "csv")
DEFAULT_MANIFESTS = Path("data_manifests")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_LANGUAGE = re.compile(r"^[a-z]{2,3}([_-][A-Za-z0-9]+)*$")


@dataclass
class PreparedCorpus:
    """What :func:`prepare_corpus` wrote, for printing and for callers that want the details."""

    name: str
    protocol: str
    seed: int
    manifest: Path
    utterances: list[Utterance]
    skipped: list[Skipped] = field(default_factory=list)
    skipped_list: Path | None = None

    def summary(self, max_listed: int = 10) -> str:
        utts = self.utterances
        emotions = Counter(u.emotion for u in utts)
        splits = Counter(u.split for u in utts)
        languages = Counter(u.language for u in utts)
        lines = [
            f"{self.name}: {len(utts)} utterances, {len({u.speaker for u in utts})} speakers, "
            f"language {', '.join(f'{k} ({v})' for k, v in sorted(languages.items()))}",
            "  emotions: " + ", ".join(f"{e} {emotions[e]}" for e in sorted_labels(emotions)),
            f"  splits ({self.protocol} protocol, seed {self.seed}): " + ", ".join(f"{s} {splits[s]}" for s in SPLITS),
            f"  manifest: {self.manifest}",
        ]
        if self.protocol == "speaker":
            lines[3:3] = [f"  {split} speakers: {', '.join(sorted({u.speaker for u in utts if u.split == split}))}"
                          for split in ("valid", "test")]
        if self.skipped:
            reasons = Counter(s.reason for s in self.skipped)
            lines.append(f"  skipped {len(self.skipped)} file(s)" + (f", all listed in {self.skipped_list}" if self.skipped_list else "")
                         + ": " + "; ".join(f"{n} x {reason}" for reason, n in reasons.most_common()))
            lines += [f"    {s.path}: {s.reason}" for s in self.skipped[:max_listed]]
            if len(self.skipped) > max_listed:
                lines.append(f"    ... and {len(self.skipped) - max_listed} more")
        else:
            lines.append("  skipped: none")
        return "\n".join(lines)


def scan_corpus(dataset: str, root: str | Path | None, *, language: str | None = None, **options) -> Scan:
    """Run the preparer of layout ``dataset`` on ``root`` (no split, nothing written)."""
    if dataset not in LAYOUTS:
        raise DataError(dataset, f"unknown corpus layout (known: {', '.join(LAYOUTS)})")
    module = import_module(f"{__name__}.{LAYOUTS[dataset]}")
    if options.get("speaker_pattern") and dataset != "folder":
        raise DataError(root or dataset, f"--speaker-pattern applies to folder corpora only, not {dataset}")
    if root is None and getattr(module, "DEFAULT_ROOT", None) is None:
        raise OptionError(dataset, "--root is required (the corpus folder" + (", or the CSV file)" if dataset == "csv" else ")"))
    if dataset in USER_LAYOUTS:
        if not language:
            raise OptionError(root or dataset, f"--language is required for a {dataset} corpus (e.g. --language sw)")
        if not _LANGUAGE.match(language):
            raise DataError(root or dataset, f"language {language!r} is not a language code like 'sw' or 'pt-BR'")
        return module.scan(root, language=language, **options)
    if root is None:
        root = module.DEFAULT_ROOT
    if language is not None and language != getattr(module, "LANGUAGE", language):
        raise DataError(root, f"{dataset} is in language {module.LANGUAGE!r}; --language {language!r} does not apply")
    return module.scan(root, **options)


def assign_splits(recordings: list[Recording], protocol: str, seed: int, where: str | Path) -> list[str]:
    """Split of each recording, drawn separately within each language so every domain gets all three."""
    if protocol not in PROTOCOLS:
        raise DataError(where, f"unknown split protocol {protocol!r} (known: {', '.join(PROTOCOLS)})")
    out = [""] * len(recordings)
    for language in sorted({r.language for r in recordings}):
        idx = [i for i, r in enumerate(recordings) if r.language == language]
        if protocol == "random":
            assigned = random_split([recordings[i].emotion for i in idx], seed)
        else:
            speakers = [recordings[i].speaker for i in idx]
            n = len(set(speakers))
            if n < 3:
                raise DataError(where, f"the speaker protocol needs at least 3 speakers per language, {language!r} has {n} "
                                       "(give speakers with --speaker-pattern or a speaker column, or use --protocol random)")
            assigned = speaker_split(speakers, fold=0, seed=seed)
        for i, split in zip(idx, assigned):
            out[i] = split
    return out


def prepare_corpus(dataset: str, root: str | Path | None, *, name: str | None = None, language: str | None = None,
                   protocol: str = "random", seed: int = 0, manifest_dir: str | Path = DEFAULT_MANIFESTS,
                   **options) -> PreparedCorpus:
    """Scan, split and write the manifest of one corpus; see the module docstring."""
    name = name or dataset
    if not _NAME.match(name):
        raise DataError(name, "dataset name must be letters, digits, '_', '-' or '.' (it becomes a file name)")
    scan = scan_corpus(dataset, root, language=language, **options)
    recordings = scan.recordings
    target = manifest_path(manifest_dir, name)
    seen: dict[str, Path] = {}
    for r in recordings:
        if r.utt_id in seen:
            raise DataError(r.path, f"duplicate utterance id {r.utt_id!r} (also {seen[r.utt_id]})")
        seen[r.utt_id] = r.path
    splits = assign_splits(recordings, protocol, seed, root or dataset)
    utterances = [
        Utterance(utt_id=r.utt_id, path=str(Path(r.path).absolute()), speaker=r.speaker, language=r.language,
                  emotion=r.emotion, split=s)
        for r, s in zip(recordings, splits)
    ]
    check_disjoint([u.utt_id for u in utterances], [u.speaker for u in utterances], splits, protocol)
    write_manifest(utterances, target)
    skipped_list = _record_skipped(scan.skipped, target)
    return PreparedCorpus(name, protocol, seed, target, utterances, scan.skipped, skipped_list)


def _record_skipped(skipped: list[Skipped], manifest: Path) -> Path | None:
    """Write ``<name>.skipped.csv`` (path,reason) beside the manifest; remove a stale one when none."""
    import csv

    path = manifest.with_name(manifest.stem + ".skipped.csv")
    if not skipped:
        path.unlink(missing_ok=True)
        return None
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "reason"])
        writer.writerows([s.path, s.reason] for s in skipped)
    return path


def prepare_dataset(dataset: str, root: str | Path | None, *, name: str | None = None, language: str | None = None,
                    protocol: str = "random", seed: int = 0, manifest_dir: Path = DEFAULT_MANIFESTS,
                    echo: Callable[[str], None] | None = print, **options) -> Path:
    """Prepare a corpus (see :func:`prepare_corpus`), print its summary, return the manifest path."""
    prepared = prepare_corpus(dataset, root, name=name, language=language, protocol=protocol, seed=seed,
                              manifest_dir=manifest_dir, **options)
    if echo is not None:
        echo(prepared.summary())
    return prepared.manifest


__all__ = ["LAYOUTS", "PreparedCorpus", "prepare_corpus", "prepare_dataset", "scan_corpus", "assign_splits"]
