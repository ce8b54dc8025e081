#!/usr/bin/env bash
# ./run.sh        install what is missing, train the main job on SynthAU, print the per-AU table
# ./run.sh test   install what is missing, run the test suite
# PYTHON=python3.12 ./run.sh ...  builds the project-local virtual environment with that Python.
set -euo pipefail
cd "$(dirname "$0")"

PYTHON="${PYTHON:-python3}"
VENV=.venv
stamp="$VENV/.installed"
want="$("$PYTHON" -c 'import sys; print(sys.version.split()[0])') $(sha256sum requirements.txt | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "Installing requirements into $VENV with $PYTHON ..."
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet -r requirements.txt
  echo "$want" > "$stamp"
fi
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-3}"

case "${1:-}" in
  test)
    shift
    exec "$VENV/bin/python" -m pytest -q tests "$@"
    ;;
  "")
    exec "$VENV/bin/python" -m wsrtl_jax train --config configs/synthau_supervised.py \
      --workdir "${WORKDIR:-workdirs/synthau_supervised}"
    ;;
  *)
    echo "usage: ./run.sh [test]" >&2
    exit 2
    ;;
esac
