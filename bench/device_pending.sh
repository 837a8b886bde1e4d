#!/usr/bin/env bash
# The GPU measurements still owed (see the issue notes), in one device call of about 9 minutes:
#
#   run(command="bash bench/device_pending.sh", carry=[".whl"], timeout_s=600)
#
# Installs the carried wheels and the package (docs/device.md), then runs each step under its own
# time limit, teeing every log to $OUT so that a step cut short still reports what it printed.
set -u
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
python3 -m pip install -q --no-deps --no-build-isolation --target /tmp/nasirpkg . || exit 1
export PYTHONPATH=/tmp/site:/tmp/nasirpkg PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version --format=csv > "$OUT/device.txt" 2>&1
python3 -c "import torch, triton; print(torch.__version__, triton.__version__)" >> "$OUT/device.txt" 2>&1

step() {  # step SECONDS LOGNAME COMMAND...
    local limit=$1 log=$2
    shift 2
    echo "### $* (limit ${limit}s)" > "$OUT/$log"
    timeout "$limit" "$@" >> "$OUT/$log" 2>&1
    echo "### exit $?" >> "$OUT/$log"
}

# issue 3: TopoNAS step time after the derived-weights sync fix (the H100 table predates it)
step 200 topo_step.log python3 bench/supernet_step.py --steps 8 --warmup 2 --json "$OUT/topo_step.json"
# issue 5: the ranking demo with a reproducible ground truth (several seeds, test loss as well)
step 240 dna_demo.log python3 bench/dna_demo.py --device cuda --resolution 16 --standalone-images 600 --seeds 4 \
    --standalone-steps 300 --sample 16 --out /tmp/dna
cp /tmp/dna/dna_demo.json "$OUT/" 2>/dev/null  # only the summary: the device returns at most 8 files
# issue 4: merged conv speed, to compare with the 2026-11-22 table
step 120 merged_conv.log python3 bench/merged_conv.py --shapes darts-dw --dtypes bf16
