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
# One torch thread: this small supernet (8 channels) gains nothing from a second thread on a 2-core
# machine (measured: 685 s on one thread, 699 s on two for the same search); set OMP_NUM_THREADS
# to use more on a bigger machine or a bigger network.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
OUT="runs/demo-$METHOD-$(date +%Y%m%d-%H%M%S)"
exec "$ROOT/.venv/bin/nni-decouple" search "$METHOD" --dataset mnist5k --train-limit 1000 --epochs 4 \
  --layers 5 --channels 8 --nodes 4 --batch-size 32 --out "$OUT" "$@"
