"""MoE layer speed and memory: dispatch strategies, dispatch="auto" on the ratio table's full grid, ratios to
the GEMM floor and peers."""

from __future__ import annotations

from .common import Benchmark, SharedRunBenchmark, relative_error, require, safe_import, skip

GridPoint = build_case = forward_fn = forward_backward_fn = measure_point = DISPATCHERS = None
FORWARD_ONLY_PEERS = peak_bytes = None
with safe_import():
    from sparse_bench.bench.grid import GridPoint
    from sparse_bench.bench.peers import FORWARD_ONLY_PEERS, build_case, forward_backward_fn, forward_fn
    from sparse_bench.bench.ratio_table import measure_point
    from sparse_bench.dispatch import DISPATCHERS
with safe_import():
    from sparse_bench.bench.timing import peak_bytes
count_ops = None
with safe_import():
    from sparse_bench.bench.op_count import count_ops

SMALL = {"num_tokens": 512, "d_model": 512, "d_hidden": 256}
STRATEGIES = ["auto", "sorted", "padded", "einsum", "loop"]


def _require_all():
    require(GridPoint=GridPoint, build_case=build_case, measure_point=measure_point, DISPATCHERS=DISPATCHERS)


def _peak_bytes(fn, device) -> int:
    """``bench.timing.peak_bytes``: the most bytes of tensors ``fn()`` holds at once above what was live
    before it (CPU: from the profiler's allocation events; CUDA: the allocator's peak), as in the ratio
    table."""
    if peak_bytes is None:
        skip("sparse_bench.bench.timing.peak_bytes is not available at this commit")
    return peak_bytes(fn, device)


class DispatchStrategies(Benchmark):
    """Each dispatch strategy at T=512, d=512, h=256 (SwiGLU), top-k router; verified against "loop". Time
    and the bytes one call allocates (where strategies differ: einsum and padded build (E, C, d) buffers)."""

    params = [[8, 64], [1, 2, 8], STRATEGIES]
    param_names = ["num_experts", "k", "dispatch"]
    quick_params = [(8, 2, dispatch) for dispatch in STRATEGIES]

    def setup(self, num_experts, k, dispatch):
        _require_all()
        if dispatch not in DISPATCHERS:
            raise NotImplementedError(f"dispatch {dispatch!r} does not exist at this commit")
        self.skip_outside_quick_params(num_experts, k, dispatch)
        self.prepare_process()
        case = build_case(GridPoint(num_experts, k, **SMALL), dispatch=dispatch, peers=("loop",))  # verifies
        self.device = case.x.device
        self.forward = forward_fn(case.layer, case.x)
        self.forward_backward = forward_backward_fn(case.layer, case.x, case.upstream)

    def time_forward(self, num_experts, k, dispatch):
        self.forward()

    def time_forward_backward(self, num_experts, k, dispatch):
        self.forward_backward()

    def track_peak_bytes_forward(self, num_experts, k, dispatch):
        """Peak bytes a forward without autograd allocates (output included)."""
        return _peak_bytes(self.forward, self.device)

    def track_peak_bytes_forward_backward(self, num_experts, k, dispatch):
        """Peak bytes a forward+backward allocates: activations kept for backward, gradients of x and of
        every weight (``peers.forward_backward_fn`` drops them after each call: each call counts them in
        full)."""
        return _peak_bytes(self.forward_backward, self.device)

    track_peak_bytes_forward.unit = track_peak_bytes_forward_backward.unit = "bytes"

    def track_ops_per_forward(self, num_experts, k, dispatch):
        """ATen calls of one forward without autograd: a cost model for launch-bound shapes (on a GPU each
        is at least one kernel launch)."""
        return self._op_counts().total

    def track_host_syncs_per_forward(self, num_experts, k, dispatch):
        """Calls of one forward that read a value on the host (on CUDA, each waits for the device)."""
        return self._op_counts().host_syncs

    def _op_counts(self):
        if count_ops is None:
            skip("sparse_bench.bench.op_count is not available at this commit")
        return count_ops(self.forward)

    track_ops_per_forward.unit = "ops"
    track_host_syncs_per_forward.unit = "syncs"


class PrepackedWeights(Benchmark):
    """Forward of dispatch="auto" with and without oneDNN-prepacked expert weights (``ExpertBank.prepack``),
    T=512, d=512, h=256 (SwiGLU); the prepacked layer is verified against the plain one."""

    params = [[8, 64], [1, 2, 8], [False, True]]
    param_names = ["num_experts", "k", "prepack"]
    quick_params = [(E, 2, prepack) for E in (8, 64) for prepack in (False, True)]

    def setup(self, num_experts, k, prepack):
        _require_all()
        require(FORWARD_ONLY_PEERS=FORWARD_ONLY_PEERS)  # the "prepacked" peer
        self.skip_outside_quick_params(num_experts, k, prepack)
        self.prepare_process()
        peers = ("prepacked",) if prepack else ()
        case = build_case(GridPoint(num_experts, k, **SMALL), dispatch="auto", peers=peers)
        self.forward = forward_fn(case.modules["prepacked"] if prepack else case.layer, case.x)

    def time_forward(self, num_experts, k, prepack):
        self.forward()


class AutoGrid(Benchmark):
    """dispatch="auto" on the ratio table's full grid: E in {8, 64}, k in {1, 2, 8}, T in {512, 4096}, d=512,
    h in {256, 1024}."""

    params = [[8, 64], [1, 2, 8], [512, 4096], [256, 1024]]
    param_names = ["num_experts", "k", "num_tokens", "d_hidden"]
    quick_params = [(8, 2, 512, 256), (64, 2, 4096, 1024)]
    timeout = 900

    def setup(self, num_experts, k, num_tokens, d_hidden):
        _require_all()
        self.skip_outside_quick_params(num_experts, k, num_tokens, d_hidden)
        self.prepare_process()
        case = build_case(GridPoint(num_experts, k, num_tokens, 512, d_hidden), dispatch="auto", peers=())
        reference = DISPATCHERS["loop"](case.x, case.plan, case.layer.experts)  # verified outside the clock
        if relative_error(case.layer(case.x).detach(), reference.detach()) > 1e-4:
            raise AssertionError("auto dispatch disagrees with the loop reference")
        self.forward = forward_fn(case.layer, case.x)

    def time_forward(self, num_experts, k, num_tokens, d_hidden):
        self.forward()


class RatioToFloor(SharedRunBenchmark):
    """The ratio table's figures as tracked values (lower is better): R, overhead, our time / peers' times,
    and the floor's speedup from one thread to two.

    One measurement (``ratio_table.measure_point``: everything timed side by side) gives all five figures of a
    point, so it runs once per point and run (``SharedRunBenchmark.shared``). A quick run measures one point,
    forward only: a point with HF's block as a peer takes a minute or more here.
    """

    params = [[8, 64], [1, 2, 8], ["forward", "forward_backward"]]
    param_names = ["num_experts", "k", "direction"]
    quick_params = [(8, 1, "forward")]
    timeout = 900

    def setup(self, shared_dir, num_experts, k, direction):
        _require_all()
        self.skip_outside_quick_params(num_experts, k, direction)
        self.record = self.shared(shared_dir, f"E{num_experts}-k{k}-{direction}",
                                  lambda: self._measure(num_experts, k, direction))

    def _measure(self, num_experts, k, direction) -> dict:
        self.prepare_process()
        peers = ("hf_mixtral", "gshard_einsum")
        case = build_case(GridPoint(num_experts, k, **SMALL), dispatch="auto", peers=peers)
        return measure_point(case, direction, num_threads=2, min_run_time=0.1, memory=None)

    def track_R(self, shared_dir, num_experts, k, direction):
        """t_layer / t_floor (speed targets: <= 1.15 forward, <= 1.3 forward+backward)."""
        return self.record["R"]

    def track_overhead(self, shared_dir, num_experts, k, direction):
        """t_layer / t_grouped_floor: what dispatch and combine add to the realised GEMMs."""
        return self.record["overhead"]

    def track_ours_over_hf(self, shared_dir, num_experts, k, direction):
        """t_ours / t_HF MixtralSparseMoeBlock on identical weights (target < 1)."""
        hf = self.record["peers"].get("hf_mixtral", {})
        if "median_s" not in hf:
            skip("transformers is not installed")
        return self.record["ours"]["median_s"] / hf["median_s"]

    def track_ours_over_gshard(self, shared_dir, num_experts, k, direction):
        """t_ours / t_GShard one-hot einsum layer (target <= 0.5)."""
        peer = self.record["peers"]["gshard_einsum"]
        if "median_s" not in peer:
            skip(peer.get("skipped", "skipped"))  # the (T, E, C) one-hot tensor would be too large
        return self.record["ours"]["median_s"] / peer["median_s"]

    def track_floor_thread_speedup(self, shared_dir, num_experts, k, direction):
        """The floor block's time on one thread / on two, timed in the same rounds (idle machine: about 2; a
        run well below 1.5 shared its cores with other work, and its other ratios do not compare with the
        rest)."""
        return self.record["thread_scaling"]["speedup"]

    track_R.unit = track_overhead.unit = track_ours_over_hf.unit = track_ours_over_gshard.unit = "ratio"
    track_floor_thread_speedup.unit = "ratio"
