#!/usr/bin/env bash
# Train one config on this machine, then analyse it.
#
#   launch/local.sh CONFIG[:PRESET] WORKDIR [--config.KEY=VALUE ...] [--resume]
#
#   launch/local.sh configs/quickstart.py:smoke runs/smoke
#   launch/local.sh configs/pathstar.py:cpu runs/ps --config.sweep.seeds="(0,1,2,3)"
#
# Uses the virtualenv $GEOMEM_VENV (default: <repo>/.venv), creating it with
# $PYTHON (default python3, must be >= 3.11: the pinned JAX needs it) and running
# `pip install -e <repo>` when the `geomem` command is missing from it
# (`pip install -e "<repo>[$GEOMEM_EXTRA]"` with GEOMEM_EXTRA=cuda or tpu).
# Relative CONFIG and WORKDIR paths are taken from the current directory
# (CONFIG also from the repository root, as `geomem` does).
set -euo pipefail

usage() {
  cat >&2 <<'EOF'
usage: launch/local.sh CONFIG[:PRESET] WORKDIR [--config.KEY=VALUE ...] [--resume]
  e.g. launch/local.sh configs/quickstart.py:smoke runs/smoke
       launch/local.sh configs/pathstar.py:cpu runs/ps --config.sweep.seeds="(0,1,2,3)"
EOF
  exit 2
}

if [[ $# -lt 2 || "$1" == -* || "$2" == -* ]]; then
  usage
fi
config="$1"
workdir="$2"
shift 2
# Only what `geomem train` accepts beyond --config/--workdir; anything else is a typo.
for arg in "$@"; do
  case "$arg" in
    --config.*=*|--resume|--no-progress) ;;
    *) echo "launch/local.sh: unexpected argument '$arg' (extra flags must be --config.KEY=VALUE, --resume or --no-progress)" >&2
       usage ;;
  esac
done

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${GEOMEM_VENV:-$repo/.venv}"
python="${PYTHON:-python3}"
target="$repo${GEOMEM_EXTRA:+[$GEOMEM_EXTRA]}"

if [[ ! -x "$venv/bin/python" ]]; then
  if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "launch/local.sh: $python is $("$python" --version 2>&1); geomem_jax needs Python >= 3.11 (set PYTHON=python3.11)" >&2
    exit 2
  fi
  echo "creating virtualenv $venv" >&2
  "$python" -m venv "$venv"
fi
if [[ ! -x "$venv/bin/geomem" ]]; then
  echo "installing $target into $venv" >&2
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet -e "$target"
fi

"$venv/bin/geomem" train --config="$config" --workdir="$workdir" "$@" \
  && "$venv/bin/geomem" analyze --workdir="$workdir"
