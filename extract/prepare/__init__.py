"""Corpus preparers: scan a corpus in its own layout and write ``data_manifests/<name>.csv``.

One module per layout (``emodb``, ``emovo``, ``cafe``, ``ravdess``, ``iemocap``, ``folder``, ``csvlist``,
``demo``), each with ``scan(root, ...) -> Scan``; :data:`PREPARERS` is the registry derived from them (name,
language(s), documented merges). :func:`prepare_corpus` turns a scan into manifest rows: it applies the
semantic merges (the preparer's documented ones and the user's ``--merge``), checks ids are unique, assigns
the split of the chosen protocol *within each language* (stratified by emotion for the paper's random
protocol; whole speakers for the speaker-independent one), guards against leakage, writes the manifest
atomically and records skipped files next to it.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType
from typing import Callable, Iterable, Mapping

from sercore.errors import DataError, OptionError
from sercore.labels import EMOTIONS, in_vocabulary, parse_merges, sorted_labels
from sercore.manifest import SPLITS, Utterance, manifest_path, write_manifest
from sercore.splits import PROTOCOLS, check_disjoint, missing_emotions, random_split, speaker_folds, speaker_split
from sercore.tables import write_csv

from . import cafe, csvlist, demo, emodb, emovo, folder, iemocap, ravdess
from .base import Recording, Scan, Skipped


@dataclass(frozen=True)
class Preparer:
    """One corpus layout that ``extract prepare --dataset NAME`` reads: a name and the module that scans it.

    Everything else is read from the module, so it is written in one place: ``scan``; ``languages`` (its
    ``LANGUAGE``, or ``LANGUAGES`` for the multilingual demo; empty for a user corpus, where ``--language``
    says); ``merges``, the semantic merges its corpus's usual protocol makes (``MERGES``, label -> label),
    reported in the summary; ``default_root``, where the corpus is without ``--root`` (the generated demo).
    """

    name: str
    module: ModuleType

    @property
    def scan(self) -> Callable[..., Scan]:
        return self.module.scan

    @property
    def languages(self) -> tuple[str, ...]:
        language = getattr(self.module, "LANGUAGE", None)
        return (language,) if language else tuple(getattr(self.module, "LANGUAGES", ()))

    @property
    def merges(self) -> dict[str, str]:
        return dict(getattr(self.module, "MERGES", {}))

    @property
    def default_root(self) -> Path | None:
        return getattr(self.module, "DEFAULT_ROOT", None)

    @property
    def user_corpus(self) -> bool:
        return not self.languages


#: Every layout, by ``--dataset`` name (``train.domains.corpus_registry`` derives language -> corpora from it).
PREPARERS: dict[str, Preparer] = {p.name: p for p in (
    Preparer("emodb", emodb), Preparer("emovo", emovo), Preparer("cafe", cafe), Preparer("iemocap", iemocap),
    Preparer("ravdess", ravdess), Preparer("folder", folder), Preparer("csv", csvlist), Preparer("demo", demo),
)}
DEFAULT_MANIFESTS = Path("data_manifests")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_LANGUAGE = re.compile(r"^[a-z]{2,3}([_-][A-Za-z0-9]+)*$")


@dataclass(frozen=True)
class Merge:
    """One semantic merge applied while preparing: ``count`` utterances of ``source`` became ``target``."""

    source: str
    target: str
    count: int
    by: str  # "--merge", or the preparer whose protocol makes it

    def __str__(self) -> str:
        return f"{self.source} -> {self.target} ({self.count}, {self.by})"


def apply_merges(recordings: list[Recording], dataset: str, user_merges: Mapping[str, str],
                 where: str | Path) -> tuple[list[Recording], list[Merge]]:
    """The recordings with the preparer's documented merges and the user's merges applied, and what was merged.

    Refused with :class:`OptionError`: a user merge whose source no recording carries (a typo would otherwise
    change nothing without a word), and one that contradicts or chains onto the preparer's merges.
    """
    documented = PREPARERS[dataset].merges
    present = Counter(r.emotion for r in recordings)
    for source, target in user_merges.items():
        if source not in present and source not in documented:
            raise OptionError("--merge", f"{source}={target}: no utterance of {where} is labelled {source!r} "
                                         f"(labels: {', '.join(sorted_labels(present))})")
        if documented.get(source, target) != target:
            raise OptionError("--merge", f"{source}={target}: {dataset} already merges {source!r} into "
                                         f"{documented[source]!r} (documented in its preparer)")
    merges = parse_merges([f"{s}={t}" for s, t in {**documented, **user_merges}.items()])  # no chain across both
    applied = [Merge(source, target, present[source], "--merge" if source in user_merges else f"{dataset}'s protocol")
               for source, target in merges.items() if present[source]]
    merged = [replace(r, emotion=merges[r.emotion]) if r.emotion in merges else r for r in recordings]
    return merged, applied


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
    merges: list[Merge] = field(default_factory=list)
    dataset: str = ""

    def warnings(self) -> list[str]:
        """Lines about the prepared corpus that the user should look at (each one line, printed as warnings)."""
        out = []
        emotions = sorted_labels({u.emotion for u in self.utterances})
        if not any(in_vocabulary(e) for e in emotions):
            hint = (" (the folder route reads the label from the top folder: give --layout, e.g. "
                    "'{speaker}/{emotion}/*', when it is another level)" if self.dataset == "folder" else "")
            out.append(f"warning: {self.name}: none of the labels ({', '.join(emotions)}) is in the built-in vocabulary "
                       f"({', '.join(EMOTIONS)}): are they emotions?{hint}")
        languages = sorted({u.language for u in self.utterances})
        for language in languages:
            utts = [u for u in self.utterances if u.language == language]
            where = self.name + (f" ({language})" if len(languages) > 1 else "")
            confound = confounded_speakers([u.speaker for u in utts], [u.emotion for u in utts])
            if confound:
                out.append(f"warning: {where}: speaker and emotion are confounded: {confound}")
            if self.protocol == "speaker":
                lacking = missing_emotions([u.emotion for u in utts], [u.split for u in utts])
                if lacking:
                    out.append(f"warning: {where}: " + "; ".join(f"the {split} split lacks {', '.join(e)}"
                                                                 for split, e in lacking.items())
                               + " (its speakers do not act them)")
        return out

    def summary(self, max_listed: int = 10, max_speakers: int = 40) -> str:
        utts = self.utterances
        emotions = Counter(u.emotion for u in utts)
        splits = Counter(u.split for u in utts)
        languages = Counter(u.language for u in utts)
        lines = [
            f"{self.name}: {_count(len(utts), 'utterance')}, {_count(len({u.speaker for u in utts}), 'speaker')}, "
            f"language {', '.join(f'{k} ({v})' for k, v in sorted(languages.items()))}",
            "  emotions: " + ", ".join(f"{e} {emotions[e]}" for e in sorted_labels(emotions)),
            "  merged: " + ("; ".join(map(str, self.merges)) if self.merges else "none (every label kept as the corpus gives it)"),
            f"  splits ({self.protocol} protocol, seed {self.seed}): " + ", ".join(f"{s} {splits[s]}" for s in SPLITS),
            f"  manifest: {self.manifest}",
        ]
        outside = [e for e in sorted_labels(emotions) if not in_vocabulary(e)]
        if outside:
            lines.insert(2, f"  outside the built-in vocabulary, kept as classes of their own: {', '.join(outside)}")
        speakers = {u.speaker for u in utts}
        if len(speakers) > 1:
            lines[-1:-1] = speaker_table(utts, max_speakers)
        if self.protocol == "speaker":
            lines[-1:-1] = [f"  {split} speakers: {', '.join(sorted({u.speaker for u in utts if u.split == split}))}"
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


#: A speaker "acts mostly one emotion" when this share of their utterances or more has one emotion; speaker and
#: emotion are confounded when at least half of the speakers (of two or more) do.
CONFOUND_SHARE = 0.8


def confounded_speakers(speakers: list[str], emotions: list[str]) -> str:
    """Why speaker and emotion are confounded in these utterances (a phrase), or ``""`` when they are not.

    Confounded: two or more emotions, two or more speakers, and at least half of the speakers with
    :data:`CONFOUND_SHARE` or more of their utterances in one emotion. Then speaker-independent folds lack
    whole emotions in test and valid, and a model can learn who speaks for what is felt. The phrase names
    the largest number of folds (``train --folds``) whose every one has every emotion, when there is one.
    """
    by_speaker: dict[str, Counter] = {}
    for s, e in zip(speakers, emotions):
        by_speaker.setdefault(s, Counter())[e] += 1
    if len(by_speaker) < 2 or len(set(emotions)) < 2:
        return ""
    mostly = sum(max(c.values()) >= CONFOUND_SHARE * sum(c.values()) for c in by_speaker.values())
    if 2 * mostly < len(by_speaker):
        return ""
    single = sum(len(c) == 1 for c in by_speaker.values())
    text = (f"{mostly} of {len(by_speaker)} speakers act mostly one emotion ({single} a single one), so "
            "speaker-independent folds lack whole emotions in test and valid")
    every = set(emotions)
    most = min(sum(e in c for c in by_speaker.values()) for e in every)  # an emotion is in no more folds than speakers act it
    complete = next((k for k in range(min(most, len(by_speaker)), 2, -1)
                     if all(set().union(*(by_speaker[s] for s, f in speaker_folds(speakers, k, 0, emotions).items() if f == fold))
                            == every for fold in range(k))), None)
    if complete is not None and complete < len(by_speaker):
        text += f"; with train --folds {complete} (or fewer) every fold has every emotion"
    return text


def speaker_table(utterances: list[Utterance], max_speakers: int = 40) -> list[str]:
    """The summary's speaker-by-emotion table: utterances per speaker (rows) and emotion (columns)."""
    counts = Counter((u.speaker, u.emotion) for u in utterances)
    emotions = sorted_labels({u.emotion for u in utterances})
    speakers = sorted({u.speaker for u in utterances})
    width = max(len("speaker"), *(len(s) for s in speakers[:max_speakers]))
    cells = [max(len(e), 3) for e in emotions]
    lines = ["  speakers x emotions:",
             "    " + "speaker".ljust(width) + "".join(f"  {e:>{c}}" for e, c in zip(emotions, cells))]
    lines += ["    " + s.ljust(width) + "".join(f"  {counts[s, e]:>{c}}" for e, c in zip(emotions, cells))
              for s in speakers[:max_speakers]]
    if len(speakers) > max_speakers:
        lines.append(f"    ... and {len(speakers) - max_speakers} more speakers")
    return lines


def _count(n: int, noun: str) -> str:
    """``1 speaker``, ``4 speakers``."""
    return f"{n} {noun}" + ("" if n == 1 else "s")


def scan_corpus(dataset: str, root: str | Path | None, *, language: str | None = None, **options) -> Scan:
    """Run the preparer of layout ``dataset`` on ``root`` (no merge, no split, nothing written)."""
    if dataset not in PREPARERS:
        raise DataError(dataset, f"unknown corpus layout (known: {', '.join(PREPARERS)})")
    preparer = PREPARERS[dataset]
    if options.get("speaker_pattern") and dataset != "folder":
        raise DataError(root or dataset, f"--speaker-pattern applies to folder corpora only, not {dataset}")
    if options.get("layout") and dataset != "folder":
        raise OptionError("--layout", f"applies to folder corpora only, not {dataset}")
    if root is None and preparer.default_root is None:
        raise OptionError(dataset, "--root is required (the corpus folder" + (", or the CSV file)" if dataset == "csv" else ")"))
    if preparer.user_corpus:
        if not language:
            raise OptionError(root or dataset, f"--language is required for a {dataset} corpus (e.g. --language sw)")
        if not _LANGUAGE.match(language):
            raise DataError(root or dataset, f"language {language!r} is not a language code like 'sw' or 'pt-BR'")
        return preparer.scan(root, language=language, **options)
    if root is None:
        root = preparer.default_root
    if language is not None and len(preparer.languages) == 1 and language != preparer.languages[0]:
        raise DataError(root, f"{dataset} is in language {preparer.languages[0]!r}; --language {language!r} does not apply")
    return preparer.scan(root, **options)


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
            assigned = speaker_split(speakers, fold=0, seed=seed, emotions=[recordings[i].emotion for i in idx])
        for i, split in zip(idx, assigned):
            out[i] = split
    return out


def prepare_corpus(dataset: str, root: str | Path | None, *, name: str | None = None, language: str | None = None,
                   protocol: str = "random", seed: int = 0, manifest_dir: str | Path = DEFAULT_MANIFESTS,
                   merge: Iterable[str] | Mapping[str, str] = (), **options) -> PreparedCorpus:
    """Scan, merge, split and write the manifest of one corpus; see the module docstring.

    ``merge``: semantic merges asked for, as ``--merge`` items (``["calm=neutral"]``) or a mapping.
    """
    name = name or dataset
    if not _NAME.match(name):
        raise DataError(name, "dataset name must be letters, digits, '_', '-' or '.' (it becomes a file name)")
    user_merges = parse_merges(f"{s}={t}" for s, t in merge.items()) if isinstance(merge, Mapping) else parse_merges(merge)
    scan = scan_corpus(dataset, root, language=language, **options)
    recordings, merges = apply_merges(scan.recordings, dataset, user_merges, root or dataset)
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
    return PreparedCorpus(name, protocol, seed, target, utterances, scan.skipped, skipped_list, merges, dataset=dataset)


def _record_skipped(skipped: list[Skipped], manifest: Path) -> Path | None:
    """Write ``<name>.skipped.csv`` (path,reason) beside the manifest; remove a stale one when none."""
    path = manifest.with_name(manifest.stem + ".skipped.csv")
    if not skipped:
        path.unlink(missing_ok=True)
        return None
    return write_csv(path, ((s.path, s.reason) for s in skipped), ["path", "reason"])


def prepare_dataset(dataset: str, root: str | Path | None, *, name: str | None = None, language: str | None = None,
                    protocol: str = "random", seed: int = 0, manifest_dir: Path = DEFAULT_MANIFESTS,
                    echo: Callable[[str], None] | None = print, warn: Callable[[str], None] | None = None,
                    **options) -> Path:
    """Prepare a corpus (see :func:`prepare_corpus`), print its summary and its warnings (``warn``: by default
    WARNING lines of the ``mgser`` logger, shown even with ``--quiet``), return the manifest path."""
    prepared = prepare_corpus(dataset, root, name=name, language=language, protocol=protocol, seed=seed,
                              manifest_dir=manifest_dir, **options)
    if echo is not None:
        echo(prepared.summary())
    for line in prepared.warnings():
        (warn or logging.getLogger("mgser").warning)(line)
    return prepared.manifest


__all__ = ["PREPARERS", "Preparer", "Merge", "PreparedCorpus", "apply_merges", "assign_splits", "confounded_speakers",
           "prepare_corpus", "prepare_dataset", "scan_corpus"]
