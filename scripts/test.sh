#!/usr/bin/env bash
# The test suite on a fresh machine: install everything (scripts/bootstrap.sh), check style, run pytest.
# Extra arguments go to pytest, e.g. `scripts/test.sh tests/test_genotype.py -x`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/bootstrap.sh"
cd "$ROOT"
"$ROOT/.venv/bin/ruff" check .
exec "$ROOT/.venv/bin/python" -m pytest "$@"
