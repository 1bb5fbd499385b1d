#!/usr/bin/env bash
# The prepared run for a lent GPU machine (the workplace's device tool), within one 10-minute call:
#   1. the CUDA tests: every router x dispatch x activation against the float64 reference and bitwise
#      determinism (tests/test_moe_reference.py, test_determinism.py), peers agreeing on CUDA in fp32 and bf16
#      and GPU records of the ratio table (test_bench_precision_device.py);
#   2. the ratio-table grid on CUDA in float32, then bfloat16 (R, shape, overhead, peers, peak memory);
#   3. the sorted/padded crossover behind dispatch="auto" on CUDA, forward and forward+backward (not measured yet:
#      choose_dispatch's CUDA branch reuses the CPU constants).
# It uses the machine's own python3 with its PyTorch and transformers (nothing is installed), and writes logs and
# results/bench.jsonl under $OUT (./device-out elsewhere); records are appended point by point, so a run cut
# short keeps what it measured. MIN_RUN_TIME (default 0.05 s per timed callable) trades time for precision.
#   run: bash scripts/device_check.sh
set -uo pipefail
out=${OUT:-device-out}
mkdir -p "$out"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 MPLBACKEND=Agg
status=0
python3 -c 'import torch, transformers; print("torch", torch.__version__, "cuda", torch.version.cuda,
    torch.cuda.get_device_name(0), "transformers", transformers.__version__)' 2>&1 | tee "$out/versions.txt"
python3 -m pytest tests/test_moe_reference.py tests/test_determinism.py tests/test_bench_precision_device.py \
    -k cuda -q -p no:cacheprovider 2>&1 | tee "$out/tests.log" || status=1
for dtype in float32 bfloat16; do
    python3 -m sparse_bench.bench --device cuda --dtype "$dtype" --results "$out/results" \
        --min-run-time "${MIN_RUN_TIME:-0.05}" 2>&1 | tee "$out/grid-$dtype.log" || status=1
done
for mode in "" --backward; do
    python3 -m sparse_bench.bench.calibrate --device cuda --threads 1 --min-run-time "${MIN_RUN_TIME:-0.05}" \
        $mode 2>&1 | tee "$out/calibrate${mode:+-backward}.log" || status=1
done
exit $status
