#!/usr/bin/env bash
# recaffe's checks on a machine with CUDA GPUs (under 8 minutes on one recent GPU):
#   1. the golden layer and solver suites (numbers of the real Caffe) with every net on cuda:0;
#   2. with 2 or more GPUs: the 2-rank training tests, `train -gpu 0,1` running on NCCL;
#   3. the scaling benchmark on CUDA (CIFAR10-quick on 1 GPU, and 2 GPUs when present; CaffeNet
#      and GoogLeNet iteration times for the 8-GPU estimate), written to benchmarks/RESULTS.md.
#
#   scripts/device_check.sh            on the GPU machine, from anywhere in the checkout
#   scripts/device_check.sh --dry-run  on a CPU machine: every step in miniature on the CPU
#                                      (results to a temporary file), to check the script itself
#
# PYTHON picks the interpreter (default: the checkout's .venv, else python3). Exit status 0 when
# every step passed; the first failing step stops the script.
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
DRY_RUN=0
case "${1:-}" in
  --dry-run) DRY_RUN=1 ;;
  "") ;;
  *) echo "usage: $0 [--dry-run]" >&2; exit 2 ;;
esac

step() { printf '\n== %s (%ds)\n' "$*" "$SECONDS"; }

step "device"
INFO=$("$PYTHON" -c "import torch, recaffe
print(torch.cuda.device_count() if torch.cuda.is_available() else 0)
print('recaffe', recaffe.__version__, 'torch', torch.__version__, 'CUDA', torch.version.cuda)")
GPUS=${INFO%%$'\n'*}
echo "${INFO#*$'\n'}"
echo "CUDA devices: $GPUS"
if [ "$DRY_RUN" = 1 ]; then
  DEVICE=cpu
  RESULTS=$(mktemp "${TMPDIR:-/tmp}/device_check_results.XXXXXX.md")
  trap 'rm -f "$RESULTS"' EXIT
  SUITE_ARGS=(-k "Convolution or ReLU or sgd")  # a few cases of each suite
  BENCH_ARGS=(--device cpu --ranks 1 --batch 4 --iters 1 --warmup 0 --reps 1)
else
  if [ "$GPUS" -lt 1 ]; then
    echo "device_check: PyTorch sees no CUDA device; run with --dry-run on a CPU machine" >&2
    exit 1
  fi
  DEVICE=cuda
  RESULTS=benchmarks/RESULTS.md
  SUITE_ARGS=()
  BENCH_ARGS=(--device cuda --ranks "$([ "$GPUS" -ge 2 ] && echo 2 || echo 1)" --iters 50 --warmup 5 --reps 3)
  nvidia-smi -L || true
fi

step "golden layer and solver suites on $DEVICE"
RECAFFE_TEST_DEVICE=$DEVICE "$PYTHON" -m pytest -q -x -p no:cacheprovider \
  tests/test_golden_layers.py tests/test_golden_solvers.py "${SUITE_ARGS[@]}"

step "2-rank training"
if [ "$GPUS" -ge 2 ]; then
  RECAFFE_TEST_DEVICE=$DEVICE "$PYTHON" -m pytest -q -x -p no:cacheprovider \
    tests/distributed/test_training.py -k "gpu_flag or dead_rank"
else
  echo "skipped: $GPUS CUDA device(s); the CPU ranks of the same tests run in CI"
fi

step "scaling benchmark on $DEVICE -> $RESULTS"
"$PYTHON" -m benchmarks.scaling "${BENCH_ARGS[@]}" --results "$RESULTS"
grep -q "## Distributed scaling ($DEVICE)" "$RESULTS"

step "device_check passed"
