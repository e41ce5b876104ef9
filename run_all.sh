#!/usr/bin/env bash
# The paper's experiment grid for the corpora given, as Dask tasks, resumable (a finished run is skipped).
#
#   ./run_all.sh [OPTIONS] LANG=DATASET[:ROOT] ...
#   ./run_all.sh de=emodb:../shared/corpora/emodb it=emovo:../shared/corpora/emovo
#   ./run_all.sh de=emodb:../shared/corpora/emodb en=demo          # EmoDB + the generated demo corpus (English)
#   ./run_all.sh --dry-run de=emodb en=demo                        # list the extraction steps and every cell
#   ./run_all.sh --seeds 2 --epochs 5 --features mfcc,ge2e --workers 1 de=emodb en=demo   # a reduced grid
#   ./run_all.sh --scheduler tcp://host:8786 --device cuda de=emodb fr=cafe:/data/CaFE    # workers with GPU=1
#
# Per corpus: extraction. Per language: the single-domain model under the random (paper) and speaker-independent
# protocols, without the auxiliary loss, each feature alone. With two or more languages: the multi-domain models
# that `train --model` offers. Then runs/grid/tables.md (tables 2, 3, 4, figure 4a). All options:
# `python -m train.studies.grid --help`; extra arguments for extract / train go in $EXTRACT_ARGS / $TRAIN_ARGS.
# `./run_all.sh fewshot --features-dir features --out runs/fewshot` instead runs the few-shot transfer study
# (bench/fewshot.py, resumable; --network DIR, --transfer-net DIR: the network methods; --multidomain DIR: the
# multi-domain models with the shots; --workers N / --scheduler ADDRESS: all of these runs as Dask tasks;
# --report FILE.md: tables, plot).
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,/^set /{/^#/p}' "$0"; echo; exec python -m train.studies.grid --help ;; esac
python -c "import train.studies.grid" 2>/dev/null || {
  echo "run_all.sh: cannot import train.studies.grid; activate the environment (. .venv/bin/activate)" >&2; exit 2; }
if [ "${1:-}" = fewshot ]; then shift; exec python -m bench.fewshot "$@"; fi
exec python -m train.studies.grid "$@"
