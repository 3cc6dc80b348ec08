#!/usr/bin/env bash
# The main job on a fresh machine: install everything (scripts/bootstrap.sh), then run a DARTS
# search with NNI on the bundled real MNIST-5k data and print the genotype it finds.
# Extra arguments go to `nni-decouple search`, e.g. `scripts/demo.sh dots` to run another method.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/bootstrap.sh"
METHOD="${1:-darts}"
[ $# -gt 0 ] && shift
cd "$ROOT"
OUT="runs/demo-$METHOD-$(date +%Y%m%d-%H%M%S)"
exec "$ROOT/.venv/bin/nni-decouple" search "$METHOD" --dataset mnist5k --train-limit 2000 --epochs 4 \
  --layers 5 --channels 8 --nodes 4 --batch-size 64 --out "$OUT" "$@"
