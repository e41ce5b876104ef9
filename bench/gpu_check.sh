#!/usr/bin/env bash
# The GPU check: the toolkit's CUDA paths on one NVIDIA GPU against the CPU, one summary line per check.
#
#   bench/gpu_check.sh [--setup] [--device cuda|cpu] [RESULTS]        (RESULTS default: $OUT)
#
# Checks (each prints one line "CHECK name: ..." into RESULTS/summary.txt and here; the commands' output goes to
# RESULTS/gpu_check.log):
#   extract_ssl   bench/ssl_speed.py: published-size WavLM Base+ and Large with random weights, 535 generated
#                 clips around 2.6 s (EmoDB's size): one at a time (float32) against batched (float16) on the GPU,
#                 and batched on the CPU (float32, the first 32 clips); the line holds its RESULT lines
#   train_single  train on de (synthetic stores sized like EmoDB) on the CPU and twice on the GPU, same seed:
#                 seconds, test UA of both and their difference, and whether the two GPU runs are identical
#   train_multi   the same for the multi-domain model nas on de, it and en (EmoDB-, EMOVO-, RAVDESS-like)
#   grid          the grid (python -m train.studies.grid) with --device cuda on two cells (single de, single it), 2 epochs
# A machine without CUDA reports the CUDA checks as skipped, with the reason. --device cpu is the rehearsal:
# every check with small sizes and the CPU in place of the GPU (the script's logic, not a measurement).
# --setup first installs the wheels of .whl/ this Python lacks (bench/gpu_check_setup.sh); the project runs from
# this source tree either way (python -m train.cli, python -m train.studies.grid), never installed.
# Exit status: 0 when every check passed or was skipped, 1 when one failed or timed out, 2 a bad option.
# Sized for at most 8 minutes on one H200 (16 CPU cores); each check has its own time limit. EPOCHS_SINGLE,
# EPOCHS_MULTI and EPOCHS_GRID (default 5, 3, 2) change the epochs of the training checks and of the grid's cells;
# CHECKS="train_multi grid" runs only those.
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

SETUP=0
DEVICE=cuda
RESULTS=
while [ $# -gt 0 ]; do
    case $1 in
        --setup) SETUP=1 ;;
        --device) [ $# -ge 2 ] || { echo "gpu_check.sh: --device needs cuda or cpu" >&2; exit 2; }; DEVICE=$2; shift ;;
        --device=*) DEVICE=${1#--device=} ;;
        -h|--help) usage; exit 0 ;;
        -*) echo "gpu_check.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
        *) RESULTS=$1 ;;
    esac
    shift
done
case $DEVICE in cuda|cpu) ;; *) echo "gpu_check.sh: --device $DEVICE: expected cuda or cpu" >&2; exit 2 ;; esac
RESULTS=${RESULTS:-${OUT:-}}
[ -n "$RESULTS" ] || { echo "gpu_check.sh: give the results folder (or set OUT)" >&2; exit 2; }

REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
mkdir -p "$RESULTS"
RESULTS=$(cd "$RESULTS" && pwd)
LOG=$RESULTS/gpu_check.log
SUMMARY=$RESULTS/summary.txt
: >"$LOG"
: >"$SUMMARY"
say() { echo "$*" | tee -a "$SUMMARY"; }

if [ "$SETUP" = 1 ]; then
    # shellcheck source=bench/gpu_check_setup.sh
    . bench/gpu_check_setup.sh >>"$LOG" 2>&1 || { say "CHECK setup: FAILED (see $LOG)"; exit 1; }
else
    export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
fi
export PY=${PYTHON:-python3}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
export WORK LOG FEATURES=$WORK/features

if [ "$DEVICE" = cpu ]; then  # the rehearsal: small, the CPU in place of the GPU
    export DEV=cpu STORES=--small EPOCHS_SINGLE=1 EPOCHS_MULTI=1 EPOCHS_GRID=1 GRID_WORKERS=2
    export SSL_ARGS="--models wavlm-base-plus --device cpu --clips 4 --seconds 1.0"
    LIMITS=(300 300 300 300)
else
    export DEV=cuda STORES= GRID_WORKERS=8
    export EPOCHS_SINGLE=${EPOCHS_SINGLE:-5} EPOCHS_MULTI=${EPOCHS_MULTI:-3} EPOCHS_GRID=${EPOCHS_GRID:-2}
    export SSL_ARGS="--models wavlm-base-plus,wavlm-large --device cuda --clips 535 --seconds 2.6 --cpu-clips 32"
    LIMITS=(240 75 105 60)  # 480 s at most, plus the setup
fi

SKIP=
if [ "$DEVICE" = cuda ]; then
    SKIP=$("$PY" bench/gpu_check.py cuda-reason 2>>"$LOG") || true
    [ -n "$SKIP" ] || SKIP=
fi
"$PY" bench/gpu_check.py env 2>>"$LOG" | tee -a "$SUMMARY" || true

seconds_since() { "$PY" -c "import sys, time; print(f'{time.time() - float(sys.argv[1]):.1f}')" "$1"; }

stores() {  # the synthetic feature stores, once
    [ -f "$FEATURES/.done" ] && return 0
    "$PY" bench/gpu_check.py stores "$FEATURES" $STORES
    touch "$FEATURES/.done"
}

# train_pair NAME EPOCHS DOMAINS EXTRA...: the CPU run, then two runs on $DEV; prints the check's line
train_pair() {
    local name=$1 epochs=$2 domains=$3 start cpu_s dev_s
    shift 3
    stores
    local args=(--domains "$domains" --features-dir "$FEATURES" --epochs "$epochs" --seeds 1 "$@")  # checkpoints written, as by default
    start=$(date +%s.%N)
    "$PY" -m train.cli "${args[@]}" --device cpu --out "$WORK/$name.cpu"
    cpu_s=$(seconds_since "$start")
    start=$(date +%s.%N)
    "$PY" -m train.cli "${args[@]}" --device "$DEV" --out "$WORK/$name.dev" 2>&1 | tee "$WORK/$name.dev.log"
    dev_s=$(seconds_since "$start")
    "$PY" -m train.cli "${args[@]}" --device "$DEV" --out "$WORK/$name.dev2" 2>&1 | tee -a "$WORK/$name.dev.log"
    local warnings
    warnings=$(grep -c "does not have a deterministic implementation" "$WORK/$name.dev.log" || true)
    echo "$("$PY" bench/gpu_check.py train-line "$name" "$WORK/$name.cpu" "$cpu_s" "$WORK/$name.dev" "$dev_s" \
        --repeat "$WORK/$name.dev2"); nondeterministic-kernel warnings: $warnings" >"$WORK/$name.line"
}

check_extract_ssl() {
    local start
    start=$(date +%s.%N)
    # shellcheck disable=SC2086
    "$PY" bench/ssl_speed.py $SSL_ARGS | tee "$WORK/ssl.out"
    local result
    result=$(grep '^RESULT ' "$WORK/ssl.out")
    echo "CHECK extract_ssl: ok in $(seconds_since "$start") s: $(echo "$result" | tr '\n' '|' | sed 's/|$//; s/|/ | /g')" >"$WORK/extract_ssl.line"
}

check_train_single() { train_pair train_single "$EPOCHS_SINGLE" de=sde; }

check_train_multi() { train_pair train_multi "$EPOCHS_MULTI" de=sde,it=sit,en=sen --model nas; }

check_grid() {
    stores
    local start
    start=$(date +%s.%N)
    "$PY" -m train.studies.grid --device "$DEV" --workers "$GRID_WORKERS" --skip-extraction --parts single --seeds 1 \
        --epochs "$EPOCHS_GRID" --features-dir "$FEATURES" --out "$WORK/grid" --train-args "--no-checkpoints" \
        de=sde it=sit 2>&1 | tee "$WORK/grid.out"
    local dask
    dask=$(grep -m1 "^dask: " "$WORK/grid.out" | sed 's/, scheduler [^ ]* / /; s/), .*$/)/' || true)
    echo "$("$PY" bench/gpu_check.py grid-line grid "$WORK/grid" "$(seconds_since "$start")"); $dask" >"$WORK/grid.line"
}

export -f stores train_pair seconds_since check_extract_ssl check_train_single check_train_multi check_grid

FAILED=0
T0=$(date +%s.%N)
run_check() {  # run_check NAME LIMIT: the check in its own bash (set -e applies), its output in the log
    local name=$1 limit=$2 rc=0
    if [ -n "$SKIP" ]; then
        say "CHECK $name: skipped ($SKIP)"
        return 0
    fi
    echo "=== $name (limit $limit s) ===" >>"$LOG"
    timeout --kill-after=10 "$limit" bash -euo pipefail -c "check_$name" >"$WORK/$name.log" 2>&1 || rc=$?
    cat "$WORK/$name.log" >>"$LOG"
    if [ "$rc" = 0 ] && [ -s "$WORK/$name.line" ]; then
        say "$(cat "$WORK/$name.line")"
    elif [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
        say "CHECK $name: TIMED OUT after $limit s (see $LOG)"
        FAILED=1
    else
        say "CHECK $name: FAILED (exit $rc: $(grep -v '^\s*$' "$WORK/$name.log" | tail -n 1 | cut -c1-300); see $LOG)"
        FAILED=1
    fi
}

ALL=(extract_ssl train_single train_multi grid)
for i in "${!ALL[@]}"; do
    if [[ " ${CHECKS:-${ALL[*]}} " == *" ${ALL[$i]} "* ]]; then
        run_check "${ALL[$i]}" "${LIMITS[$i]}"
    fi
done
say "# gpu_check ($DEVICE): $(seconds_since "$T0") s in all; log $LOG"
exit "$FAILED"
