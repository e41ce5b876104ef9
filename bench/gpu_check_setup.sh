#!/usr/bin/env bash
# Make the source tree runnable on a machine without network access and without installing the project:
# install the wheels of .whl/ whose module this Python cannot import into a folder of their own
# (default /tmp/site), then put that folder and the repository first on PYTHONPATH.
#
#   . bench/gpu_check_setup.sh            # sourced: exports PYTHONPATH (what bench/gpu_check.sh --setup does)
#
# .whl/ is not part of the repository: fill it on a machine with network access (docs/cluster.md, "GPU check"),
# e.g. python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d .whl dask==2026.8.0 ...
# A wheel's distribution name is its module's name (dask, distributed, librosa, soundfile, lazy_loader, ...).
# Commands then run as modules: extract = python -m extract.cli, train = python -m train.cli,
# predict = python -m predict.cli, mgser = python -m mgser.cli, the grid = python -m train.studies.grid.

_mgser_setup() {
    local repo site python wheel module missing=()
    repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    site=${MGSER_SITE:-/tmp/site}
    python=${PYTHON:-python3}
    if [ -d "$repo/.whl" ]; then
        for wheel in "$repo"/.whl/*.whl; do
            [ -e "$wheel" ] || continue
            module=$(basename "$wheel" | cut -d- -f1)
            if ! "$python" -c "import $module" >/dev/null 2>&1; then
                missing+=("$wheel")
            fi
        done
    fi
    # distributed wants its own dask release: a dask here beside a missing distributed is replaced too
    local all=" ${missing[*]:-} "
    if [[ $all == */.whl/distributed-* && $all != */.whl/dask-* ]]; then
        missing+=("$repo"/.whl/dask-*.whl)
    fi
    if [ ${#missing[@]} -gt 0 ]; then
        echo "setup: installing ${#missing[@]} wheel(s) into $site: $(for w in "${missing[@]}"; do basename "$w" | cut -d- -f1-2; done | tr '\n' ' ')"
        if "$python" -m pip --version >/dev/null 2>&1; then
            "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" "${missing[@]}" || return 1
        else  # no pip in this environment: a wheel is a zip file of the installed tree
            mkdir -p "$site"
            for wheel in "${missing[@]}"; do "$python" -m zipfile -e "$wheel" "$site" || return 1; done
        fi
    else
        echo "setup: every wheel of $repo/.whl is importable already"
    fi
    export PYTHONPATH="$site:$repo${PYTHONPATH:+:$PYTHONPATH}"
}

_mgser_setup
