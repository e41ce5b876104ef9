"""The Python parts of ``bench/gpu_check.sh``: synthetic feature stores, and one summary line per check.

    python bench/gpu_check.py env                                   # one line: torch, CUDA, the GPU, threads
    python bench/gpu_check.py cuda-reason                           # why CUDA cannot be used here (exit 1), or nothing
    python bench/gpu_check.py stores FOLDER [--small]               # features/{sde,sit,sen}/{train,valid,test}.h5
    python bench/gpu_check.py train-line NAME CPU_RUN CPU_S DEV_RUN DEV_S [--repeat RUN] [--tolerance 0.05]
    python bench/gpu_check.py grid-line NAME GRID_OUT SECONDS

The stores hold three synthetic languages sized like EmoDB (de: 535 utterances, 7 emotions, 10 speakers), EMOVO
(it: 588, 7 emotions, 6 speakers) and a RAVDESS-like set cut to 600 utterances (en: 8 emotions, 24 speakers),
each with an ``mfcc`` sequence (39 dimensions, 100 to 400 frames) and a ``ge2e`` embedding (256), whose means
depend on the emotion (separable, not trivially). ``--small`` writes 8 utterances per emotion and shorter
sequences (the script's rehearsal on a CPU). Timing and agreement only; no result to quote as accuracy.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sercore.synthetic import write_synthetic_stores

SEVEN = ("neutral", "happy", "angry", "sad", "fear", "disgust", "boredom")
EIGHT = ("neutral", "calm", "happy", "sad", "angry", "fear", "disgust", "surprise")
#: dataset -> (language, emotions, utterances, speakers)
DOMAINS = {"sde": ("de", SEVEN, 535, 10), "sit": ("it", SEVEN, 588, 6), "sen": ("en", EIGHT, 600, 24)}
SEQ_DIM, EMB_DIM = 39, 256


def write_stores(root: Path, small: bool = False) -> list[str]:
    """The three synthetic datasets under ``root`` (:func:`sercore.synthetic.write_synthetic_stores`, emotions in
    turn: utterance i has emotion i mod the number of emotions); returns their ``LANG=DATASET`` domains."""
    domains = []
    for k, (dataset, (language, emotions, n, speakers)) in enumerate(DOMAINS.items()):
        n = 8 * len(emotions) if small else n
        utterances = [(f"{language}_{i:04d}", i % len(emotions), f"{language}spk{i % speakers}") for i in range(n)]
        write_synthetic_stores(root, dataset, language, emotions, utterances, seq_dim=SEQ_DIM, emb_dim=EMB_DIM,
                               separation=(0.6, 0.15), frames=(20, 60) if small else (100, 400), seed=k)
        domains.append(f"{language}={dataset}")
    return domains


def test_uas(run: Path) -> dict[str, float]:
    """Test UA (mean over seeds) per language of a ``train`` run folder."""
    metrics = json.loads((run / "metrics.json").read_text())
    return {lang: s["test_ua"]["mean"] for lang, s in metrics["domains_summary"].items()}


def histories(run: Path) -> list:
    """Every run's per-epoch history (losses and validation scores), to compare two runs exactly."""
    return [r["history"] for r in json.loads((run / "metrics.json").read_text())["runs"]]


def train_line(name: str, cpu: Path, cpu_s: float, dev: Path, dev_s: float, repeat: Path | None, tolerance: float) -> str:
    a, b = test_uas(cpu), test_uas(dev)
    diff = max(abs(a[lang] - b[lang]) for lang in a)
    uas = ", ".join(f"{lang} {a[lang]:.3f}/{b[lang]:.3f}" for lang in a)
    verdict = "within" if diff <= tolerance else "OUTSIDE"
    line = (f"CHECK {name}: cpu {cpu_s:.1f} s, {device_of(dev)} {dev_s:.1f} s ({cpu_s / max(dev_s, 1e-9):.1f}x); "
            f"test UA cpu/{device_of(dev)} {uas}; max |diff| {diff:.3f} ({verdict} the tolerance {tolerance:g})")
    if repeat is not None:
        same = histories(repeat) == histories(dev) and test_uas(repeat) == b
        line += f"; second {device_of(dev)} run {'identical' if same else 'DIFFERENT'}"
    return line


def device_of(run: Path) -> str:
    return json.loads((run / "config.json").read_text()).get("train", {}).get("device", "?")


def grid_line(name: str, out: Path, seconds: float) -> str:
    grid = json.loads((out / "grid.json").read_text())
    cells = grid["cells"]
    ok = [c for c in cells.values() if c["state"] in ("ok", "done before")]
    devices = sorted({device_of(Path(c["folder"])) for c in cells.values() if (Path(c["folder"]) / "config.json").is_file()})
    per_cell = ", ".join(f"{n} {c['seconds']} s" for n, c in cells.items())
    return (f"CHECK {name}: {len(ok)}/{len(cells)} cells done in {seconds:.1f} s on {', '.join(devices) or '?'} "
            f"({per_cell}); failed: {', '.join(grid['failed']) or 'none'}")


def env_line() -> str:
    import torch

    gpu = (f"{torch.cuda.get_device_name(0)}, {torch.cuda.device_count()} GPU(s)" if torch.cuda.is_available()
           else "no CUDA")
    return (f"# python {sys.version.split()[0]}, torch {torch.__version__} (CUDA build {torch.version.cuda or 'none'}), "
            f"{gpu}, {torch.get_num_threads()} CPU threads")


def cuda_reason() -> str:
    """Why ``--device cuda`` cannot run here; empty when it can."""
    import torch

    if torch.cuda.is_available():
        return ""
    return f"no CUDA device (torch {torch.__version__}, CUDA build {torch.version.cuda or 'none'})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("env")
    sub.add_parser("cuda-reason")
    p = sub.add_parser("stores")
    p.add_argument("folder", type=Path)
    p.add_argument("--small", action="store_true")
    p = sub.add_parser("train-line")
    for arg, kind in (("name", str), ("cpu", Path), ("cpu_s", float), ("dev", Path), ("dev_s", float)):
        p.add_argument(arg, type=kind)
    p.add_argument("--repeat", type=Path, default=None)
    p.add_argument("--tolerance", type=float, default=0.05)
    p = sub.add_parser("grid-line")
    p.add_argument("name")
    p.add_argument("out", type=Path)
    p.add_argument("seconds", type=float)
    args = parser.parse_args(argv)
    if args.what == "env":
        print(env_line())
    elif args.what == "cuda-reason":
        reason = cuda_reason()
        if reason:
            print(reason)
            return 1
    elif args.what == "stores":
        print(" ".join(write_stores(args.folder, args.small)))
    elif args.what == "train-line":
        print(train_line(args.name, args.cpu, args.cpu_s, args.dev, args.dev_s, args.repeat, args.tolerance))
    else:
        print(grid_line(args.name, args.out, args.seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
