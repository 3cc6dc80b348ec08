#!/usr/bin/env bash
# The test suite on a fresh machine: install everything (scripts/bootstrap.sh), check style, run pytest.
# Extra arguments go to pytest, e.g. `scripts/test.sh tests/test_genotype.py -x`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${NNI_DECOUPLE_VENV:-$ROOT/.venv}"  # the same override as bootstrap.sh's
bash "$ROOT/scripts/bootstrap.sh"
cd "$ROOT"
"$VENV/bin/ruff" check .
exec "$VENV/bin/python" -m pytest "$@"
