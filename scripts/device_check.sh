#!/usr/bin/env bash
# The prepared run for a lent GPU machine (the workplace's device tool), within one 10-minute call, most
# wanted first:
#   1. the CUDA tests: every router x dispatch x activation against the float64 reference and bitwise
#      determinism (tests/test_moe_reference.py, test_determinism.py), peers agreeing on CUDA in fp32 and bf16
#      and GPU records of the ratio table (test_bench_precision_device.py);
#   2. the ratio table's full grid on CUDA in bfloat16, then float32 (R, shape, overhead, peers,
#      peak memory);
#   3. the crossovers behind dispatch="auto" on CUDA (sorted/padded, and the opt-in grouped GEMM over sorted),
#      forward and forward+backward, bf16 then fp32: not measured yet, so choose_dispatch's CUDA branch reuses
#      the CPU constants.
# It uses the machine's own python3 with its PyTorch and transformers (nothing is installed there: that
# machine reaches no package index). The pure-Python dependencies the command line and the results store add
# (click, threadpoolctl, py-cpuinfo) travel in .device-deps/, made here by `make device-deps` and carried:
#   run(command="bash scripts/device_check.sh", carry=[".device-deps"], timeout_s=480)
# It writes versions.txt, tests.log, grid.log, calibrate.log and results/results.sqlite under $OUT
# (./device-out elsewhere): five files, under the tool's eight. Records are stored point by point, so a run
# cut short keeps what it measured. MIN_RUN_TIME (default 0.05 s per timed callable) trades time for precision.
set -uo pipefail
out=${OUT:-device-out}
mkdir -p "$out"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}:$PWD/.device-deps PYTHONUNBUFFERED=1 MPLBACKEND=Agg
status=0
python3 -c 'import torch, transformers; print("torch", torch.__version__, "cuda", torch.version.cuda,
    torch.cuda.get_device_name(0), "transformers", transformers.__version__)' 2>&1 | tee "$out/versions.txt"
python3 -m pytest tests/test_moe_reference.py tests/test_determinism.py tests/test_bench_precision_device.py \
    -k cuda -q -p no:cacheprovider 2>&1 | tee "$out/tests.log" || status=1
for dtype in bfloat16 float32; do
    python3 -m sparse_bench.bench --device cuda --dtype "$dtype" --results "$out/results" \
        --min-run-time "${MIN_RUN_TIME:-0.05}" 2>&1 | tee -a "$out/grid.log" || status=1
done
for dtype in bfloat16 float32; do
    for mode in "" --backward; do
        echo "== calibrate --dtype $dtype $mode" | tee -a "$out/calibrate.log"
        python3 -m sparse_bench.bench.calibrate --device cuda --dtype "$dtype" --threads 1 \
            --min-run-time "${MIN_RUN_TIME:-0.05}" $mode 2>&1 | tee -a "$out/calibrate.log" || status=1
    done
done
exit $status
