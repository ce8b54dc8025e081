#!/usr/bin/env bash
# ./run.sh        install what is missing, train on SynthAU with 10% of the training frames
#                 labelled the supervised baseline, the WSRTL network alone (no auxiliary part)
#                 and WSRTL, print their per-AU tables side by side
# ./run.sh test   install what is missing (with requirements-test.txt), run the test suite on
#                 TEST_WORKERS processes (default 2; 0 runs it in this one)
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
    test_stamp="$VENV/.installed-test"
    want_test="$want $(sha256sum requirements-test.txt | cut -d' ' -f1)"
    if [ ! -f "$test_stamp" ] || [ "$(cat "$test_stamp")" != "$want_test" ]; then
      echo "Installing the test requirements into $VENV ..."
      "$VENV/bin/python" -m pip install --quiet -r requirements-test.txt
      echo "$want_test" > "$test_stamp"
    fi
    exec "$VENV/bin/python" -m pytest -q -n "${TEST_WORKERS:-2}" tests "$@"
    ;;
  "")
    out="${WORKDIR:-workdirs}"
    "$VENV/bin/python" -m wsrtl_jax train --config configs/synthau_wsrtl.py \
      --config.method=supervised --config.model.name=au_detector --workdir "$out/supervised_10pct"
    "$VENV/bin/python" -m wsrtl_jax train --config configs/synthau_wsrtl.py \
      --config.wsrtl.inpainting.weight=0 --config.wsrtl.flow.weight=0 \
      --config.wsrtl.semi.weight=0 --workdir "$out/wsrtl_network_alone"
    "$VENV/bin/python" -m wsrtl_jax train --config configs/synthau_wsrtl.py \
      --workdir "$out/wsrtl_10pct"
    echo
    echo "SynthAU fold 1 test split, 10% of the training frames labelled, same steps and seed:"
    exec "$VENV/bin/python" -m wsrtl_jax report "$out/supervised_10pct" \
      "$out/wsrtl_network_alone" "$out/wsrtl_10pct"
    ;;
  *)
    echo "usage: ./run.sh [test]" >&2
    exit 2
    ;;
esac
