"""Expert parallelism over torch.distributed: the MoE layer's experts split across processes and machines.

Public API: ``ExpertParallelDispatch`` (the ``(x, plan, bank) -> y`` dispatch over a process group; what
pass ``MoELayer(..., dispatch=ExpertParallelDispatch(E, pg))``), ``shard_experts`` (a rank's slice of a full
ExpertBank), ``ExchangeStats`` (rows and bytes a call sent, per-phase times), ``resolve_group`` / ``init_from_env``
(process groups), ``run_workers`` (local multi-process runs with a deadline). Benchmark entry point:
``torchrun --nproc_per_node=N -m sparse_bench.distributed.bench``.
"""

from .exchange import AllToAllRows, all_to_all_rows, local_expert_count, rows_crossing, rows_per_owner
from .expert_parallel import ExchangeStats, ExpertParallelDispatch, shard_experts
from .group import GroupInfo, init_from_env, resolve_group
from .launch import WorkerFailure, run_workers

__all__ = [
    "AllToAllRows", "ExchangeStats", "ExpertParallelDispatch", "GroupInfo", "WorkerFailure", "all_to_all_rows",
    "init_from_env", "local_expert_count", "resolve_group", "rows_crossing", "rows_per_owner", "run_workers",
    "shard_experts",
]
