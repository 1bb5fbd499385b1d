#!/usr/bin/env bash
# The prepared run for a lent GPU machine (the workplace's device tool), under 8 minutes in one call, most
# wanted first, each part capped (`timeout`) so a slow part cannot starve the rest:
#   1. the CUDA tests (<= 150 s): every router x dispatch x activation against the float64 reference, bitwise
#      determinism of outputs and gradients, no host syncs, CUDA-graph capture and torch.compile(fullgraph)
#      of the default path, peers agreeing on CUDA in fp32 and bf16 (every test id containing "cuda");
#   2. the presets at full size (<= 5 x 40 s): Mixtral-8x7B, OLMoE-1B-7B, Qwen3-30B-A3B, DeepSeek-V3,
#      Switch-Base, bf16, 8192 tokens, forward, beside our strategies and HF's block (the GPU targets: within
#      1.3x of the grouped floor, >= 2x HF);
#   3. the ratio table's grid on CUDA in bf16 (<= 100 s; auto within 1.1x of our fastest strategy, a forward
#      at T=512 under 300 us);
#   4. the crossovers behind dispatch="auto" on CUDA, bf16 forward (<= 45 s).
# It uses the machine's own python3 with its PyTorch and transformers (nothing is installed there: that
# machine reaches no package index). The pure-Python dependencies the command line and the results store add
# (click, threadpoolctl, py-cpuinfo) travel in .device-deps/, made here by `make device-deps` and carried:
#   run(command="bash scripts/device_check.sh", carry=[".device-deps"], timeout_s=480)
# It writes versions.txt, tests.log, presets.log, grid.log, calibrate.log and results/results.sqlite under
# $OUT (./device-out elsewhere): six files, under the tool's eight. Records are stored point by point, so a
# part cut short keeps what it measured. MIN_RUN_TIME (default 0.03 s per timed callable) trades time for
# precision.
set -uo pipefail
out=${OUT:-device-out}
mkdir -p "$out"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}:$PWD/.device-deps PYTHONUNBUFFERED=1 MPLBACKEND=Agg
min_run_time=${MIN_RUN_TIME:-0.03}
status=0
python3 -c 'import torch, transformers; print("torch", torch.__version__, "cuda", torch.version.cuda,
    torch.cuda.get_device_name(0), "transformers", transformers.__version__)' 2>&1 | tee "$out/versions.txt"
timeout 150 python3 -m pytest tests -k cuda -m "not slow" -q -p no:cacheprovider 2>&1 | tee "$out/tests.log" \
    || status=1
for preset in mixtral-8x7b olmoe-1b-7b qwen3-30b-a3b deepseek-v3 switch-base; do
    timeout 40 python3 -m sparse_bench.bench --preset "$preset" --tokens 8192 --device cuda --dtype bfloat16 \
        --forward-only --peer grouped --peer sorted --peer padded --peer hf_mixtral --no-memory \
        --results "$out/results" --min-run-time "$min_run_time" 2>&1 | tee -a "$out/presets.log" || status=1
done
timeout 100 python3 -m sparse_bench.bench --device cuda --dtype bfloat16 --results "$out/results" \
    --min-run-time "$min_run_time" 2>&1 | tee -a "$out/grid.log" || status=1
timeout 45 python3 -m sparse_bench.bench.calibrate --device cuda --dtype bfloat16 --threads 1 \
    --min-run-time "$min_run_time" 2>&1 | tee -a "$out/calibrate.log" || status=1
exit $status
