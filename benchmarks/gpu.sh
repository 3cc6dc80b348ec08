#!/usr/bin/env bash
# The GPU benchmark: on a machine with one GPU, in under 10 minutes, measure
#   1. the search cost at the reference setting (8 cells, 16 channels, batch 32) of NNI's DARTS() and
#      every method, with the fast path on and off and with mixed precision (AMP) on and off;
#   2. the search quality (found cells retrained against random cells), searches on the GPU;
# and write their sections into RESULTS.md (tags gpu-fast, gpu-plain, gpu-amp, gpu-amp-plain; quality).
#
#   benchmarks/gpu.sh                           # on the GPU, writes benchmarks/RESULTS.md and results/
#   benchmarks/gpu.sh --device cpu --tiny       # the dry run the test suite runs (CPU, tiny, < 1 min)
#   benchmarks/gpu.sh --out DIR --results-md F  # elsewhere
#
# AMP is 16-mixed on CUDA and bf16-mixed on the CPU. NNI's DARTS() always runs as a user runs it
# (default memory format, 32-bit): it is the 1.00x of every section. Environment: PYTHON (default
# python) runs the package; extra arguments after -- go to every `nni-decouple bench` call.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${PYTHON:-python}"
DEVICE=cuda
TINY=0
OUT="$HERE/results"
MD="$HERE/RESULTS.md"
EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --device) DEVICE="$2"; shift 2 ;;
    --tiny) TINY=1; shift ;;
    --out) OUT="$2"; shift 2 ;;
    --results-md) MD="$2"; shift 2 ;;
    --) shift; EXTRA=("$@"); break ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "gpu.sh: unknown option $1 (use --device, --tiny, --out, --results-md, -- EXTRA)" >&2; exit 2 ;;
  esac
done
case "$DEVICE" in
  cuda) AMP=16-mixed ;;
  cpu) AMP=bf16-mixed ;;
  *) echo "gpu.sh: --device must be cuda or cpu, got $DEVICE" >&2; exit 2 ;;
esac

if [ "$TINY" = 1 ]; then
  # Every code path, nothing measured: a 3-cell supernet of 4 channels, one timed call, in one process.
  METHODS="darts[decoupled]"
  SIZE=(--layers 3 --channels 4 --nodes 2 --batch-size 4 --warmup 0 --steps 1 --no-isolation --timeout 120)
  QUALITY=(--methods darts --q-layers 3 --q-channels 4 --q-nodes 2 --q-batch-size 8 --search-epochs 1
           --search-train-limit 16 --retrain-channels 4 --retrain-epochs 1 --retrain-batch-size 16
           --retrain-train-limit 32 --seeds 1 --random 1 --no-isolation)
else
  # The rows of the issue's target: DARTS through this package, GDAS, DOTS' two stages, eDARTS,
  # DNAS (K=4), Stretchable Cells, D-DARTS' fast ablation (NNI's DARTS is always measured).
  METHODS="darts[decoupled],gdarts,dots[op],dots[topology],edarts,dnas[k4],stretchable,ddarts[fast]"
  SIZE=(--layers 8 --channels 16 --batch-size 32 --warmup 1 --steps 3)
  QUALITY=(--seeds 1 --random 2 --search-epochs 2 --retrain-epochs 1)
fi

bench() {
  echo "== nni-decouple bench $*" >&2
  "$PYTHON" -m nni_decouple.cli bench --device "$DEVICE" --out "$OUT" --results-md "$MD" "$@" ${EXTRA[@]+"${EXTRA[@]}"}
}

bench --cost --methods "$METHODS" "${SIZE[@]}" --no-e2e --tag gpu-fast
bench --cost --methods "$METHODS" "${SIZE[@]}" --no-e2e --no-floor --no-fast --tag gpu-plain
bench --cost --methods "$METHODS" "${SIZE[@]}" --no-e2e --no-floor --precision "$AMP" --tag gpu-amp
bench --cost --methods "$METHODS" "${SIZE[@]}" --no-e2e --no-floor --precision "$AMP" --no-fast --tag gpu-amp-plain
bench --quality "${QUALITY[@]}"
bench --report-only
