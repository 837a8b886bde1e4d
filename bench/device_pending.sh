#!/usr/bin/env bash
# The GPU measurements owed by issues 13 and 17, in one device call of about 9 minutes:
#
#   run(command="bash bench/device_pending.sh [kernels] [step]", carry=[".whl"], timeout_s=590)
#
# "kernels" (about 5 minutes): issue 13's depthwise rows (eager) and GPU tests; "dense" (2 minutes):
# dense/factorized rows, the compiled depthwise row and the breakdown; "step" (2 minutes): issue 17's
# search-step row. No argument: all three.
# Installs the carried wheels and the package (docs/device.md), then runs each step under its own
# time limit, teeing every log to $OUT so that a step cut short still reports what it printed.
set -u
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
python3 -m pip install -q --no-deps --no-build-isolation -e . > "$OUT/install.log" 2>&1 || exit 1
{ date -u; nvidia-smi --query-gpu=name,driver_version --format=csv;
  python3 -c "import torch, triton, sys; print(sys.version.split()[0], torch.__version__, triton.__version__)"; } \
    > "$OUT/device.txt" 2>&1

step() {  # step SECONDS LOGNAME COMMAND...
    local limit=$1 log=$2
    shift 2
    echo "### $* (limit ${limit}s)" > "$OUT/$log"
    local t0=$SECONDS
    timeout "$limit" "$@" >> "$OUT/$log" 2>&1
    echo "### exit $? after $((SECONDS - t0)) s" >> "$OUT/$log"
}

parts="${*:-kernels dense step}"

if [[ " $parts " == *" kernels "* ]]; then
# issue 13 items 1 and 3: depthwise, both layouts, every dtype, stride 1 and 2; pieces of the nhwc path
step 200 dw.log python3 bench/merged_conv.py --shapes darts-dw,darts-dw-s2 --dtypes bf16,fp16,fp32 \
    --layouts direct,nhwc --compile-layouts none --no-naive
# issue 13 item 4: the GPU test set (float64 references, every dtype, compiled op)
step 90 gpu_tests.log python3 -m pytest tests/kernels/test_gpu.py -q -n 8 -p no:cacheprovider
fi
if [[ " $parts " == *" dense "* ]]; then
# issue 13 item 2: dense and factorized merges (Triton merge backward), implicit GEMM vs cuDNN
step 60 dense.log python3 bench/merged_conv.py --shapes nb201-dense,darts-factorized --dtypes bf16 --no-naive
step 50 dwc.log python3 bench/merged_conv.py --shapes darts-dw --dtypes bf16 --layouts nhwc --no-naive --breakdown
fi
if [[ " $parts " == *" last "* ]]; then
# the third call of 2026-11-26: darts-dw bf16 eager after the host-sync fix, breakdown, new-kernel GPU tests
step 75 dwl.log python3 bench/merged_conv.py --shapes darts-dw --dtypes bf16 --layouts direct,nhwc \
    --compile-layouts none --no-naive --breakdown
step 90 gpu_tests2.log python3 -m pytest tests/kernels/test_gpu.py -q -n 8 -p no:cacheprovider \
    -k "nhwc or implicit or op_on_cuda or weight_prep"
fi
if [[ " $parts " == *" step "* ]]; then
# issue 17 item 5: the DARTS search step, plain vs TopoNAS passes, after the form chooser
step 100 step.log python3 bench/supernet_step.py --spaces darts --configs none,all --steps 6 --warmup 2 --repeat 2 \
    --ops --json "$OUT/step.json"
fi
