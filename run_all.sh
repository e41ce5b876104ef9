#!/usr/bin/env bash
# The paper's experiment grid for the corpora given, resumable: a finished run (its metrics.json exists) is skipped.
#
#   ./run_all.sh [--dry-run] [--seeds N] [--epochs N] [--out runs/grid] LANG=DATASET[:ROOT] ...
#   ./run_all.sh de=emodb:../shared/corpora/emodb it=emovo:../shared/corpora/emovo
#   ./run_all.sh de=demo en=demo fr=demo          # the generated demo corpus
#
# Per corpus: extraction (every feature with weights here). Per language: the single-domain model under the
# random (paper) and speaker-independent protocols, and the ablations (without the auxiliary loss, each feature
# alone). With two or more languages: every multi-domain model that `train --model` offers.
# Extra arguments for extract (e.g. --scheduler tcp://host:8786, --wav2vec-checkpoint F) go in $EXTRACT_ARGS,
# for train (e.g. --device cuda) in $TRAIN_ARGS.
set -euo pipefail

dry_run=0; seeds=5; epochs=20; out=runs/grid; specs=()
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) dry_run=1 ;;
    --seeds) seeds=$2; shift ;;
    --epochs) epochs=$2; shift ;;
    --out) out=$2; shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *=*) specs+=("$1") ;;
    *) echo "run_all.sh: unknown argument $1 (expected LANG=DATASET[:ROOT])" >&2; exit 2 ;;
  esac
  shift
done
for tool in extract train; do
  command -v "$tool" >/dev/null || { echo "run_all.sh: '$tool' not found; activate the environment (. .venv/bin/activate)" >&2; exit 2; }
done
[ ${#specs[@]} -gt 0 ] || { echo "run_all.sh: give at least one LANG=DATASET[:ROOT]" >&2; exit 2; }

step() {  # step NAME DONE_FILE COMMAND...: run unless DONE_FILE exists
  local name=$1 done_file=$2; shift 2
  if [ -n "$done_file" ] && [ -e "$done_file" ]; then echo "skip  $name (done: $done_file)"; return; fi
  echo "run   $name: $*"
  [ $dry_run = 1 ] || "$@"
}

declare -A extracted=()
langs=(); domain_args=()
for spec in "${specs[@]}"; do
  lang=${spec%%=*}; rest=${spec#*=}; dataset=${rest%%:*}; root=""
  [ "$rest" != "$dataset" ] && root=${rest#*:}
  langs+=("$lang"); domain_args+=("$lang=$dataset")
  if [ -z "${extracted[$dataset]:-}" ]; then
    extracted[$dataset]=1
    # extract resumes by itself: a finished dataset costs one quick pass over its stores
    step "extract $dataset" "" extract --dataset "$dataset" ${root:+--root "$root"} --quiet ${EXTRACT_ARGS:-}
  fi
done

for i in "${!langs[@]}"; do
  lang=${langs[$i]}; dom=${domain_args[$i]}
  for protocol in random speaker; do
    run="$out/single_${lang}_${protocol}"
    step "single $lang $protocol" "$run/metrics.json" \
      train --domains "$dom" --protocol "$protocol" --seeds "$seeds" --epochs "$epochs" --out "$run" --quiet ${TRAIN_ARGS:-}
  done
  run="$out/ablations_${lang}"
  step "ablations $lang" "$run/ablations.json" \
    train --domains "$dom" --ablations --seeds "$seeds" --epochs "$epochs" --out "$run" --quiet ${TRAIN_ARGS:-}
done

if [ ${#langs[@]} -ge 2 ]; then
  joined=$(IFS=,; echo "${domain_args[*]}")
  help=$(train --help)
  for model in base sb omoe mmoe nas; do  # the paper's table 3, as far as this trainer offers them
    grep -q -- "--model.*$model" <<<"$help" || { echo "skip  multi-domain $model (not offered by train --model)"; continue; }
    run="$out/multi_${model}"
    step "multi-domain $model" "$run/metrics.json" \
      train --domains "$joined" --model "$model" --seeds "$seeds" --epochs "$epochs" --out "$run" --quiet ${TRAIN_ARGS:-}
  done
fi
echo "done: results under $out/"
