#!/usr/bin/env bash
# Create (idempotently) the reference virtual environment holding spleeter 2.4.2
# (it pins tensorflow 2.12.1 and numpy<2) under ~/.cache/fastsep/spleeter-venv.
# Usage: tools/spleeter_env.sh            -> prints the venv's python path on success
# Env:   FASTSEP_SPLEETER_VENV overrides the location, PYTHON the interpreter (python3.11).
set -euo pipefail
VENV="${FASTSEP_SPLEETER_VENV:-$HOME/.cache/fastsep/spleeter-venv}"
PY="${PYTHON:-python3.11}"
STAMP="$VENV/.spleeter-2.4.2.ok"
if [[ -f "$STAMP" ]] && "$VENV/bin/python" -c "import spleeter, tensorflow" >/dev/null 2>&1; then
    echo "$VENV/bin/python"
    exit 0
fi
mkdir -p "$(dirname "$VENV")"
if [[ ! -x "$VENV/bin/python" ]]; then
    "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip >&2
"$VENV/bin/python" -m pip install --quiet "spleeter==2.4.2" >&2
"$VENV/bin/python" - >&2 <<'PY'
import importlib.metadata as md
import numpy, tensorflow as tf
assert md.version("spleeter") == "2.4.2", md.version("spleeter")
print("spleeter", md.version("spleeter"), "tensorflow", tf.__version__, "numpy", numpy.__version__)
PY
touch "$STAMP"
echo "$VENV/bin/python"
