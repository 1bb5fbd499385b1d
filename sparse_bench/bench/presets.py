"""Named benchmark configurations: the MoE layers of published models, and the routers a shape may name.

A preset gives one MoE layer's widths, expert count, top-k and shared experts as its model's ``config.json``
states them. ``preset_point`` turns it into a ``GridPoint``: full size on CUDA; on CPU d and h are divided by
``cpu_scale`` (a power of two, stated in the output and the record) so that the expert weights take at most
``CPU_WEIGHT_BYTES`` and a forward of ``CPU_TOKENS`` tokens runs in about a second on two cores.

Every preset is timed as the ratio table's layer: SwiGLU experts and the benchmark's router (``--router``,
top-k softmax by default). The models' own routers differ in detail (OLMoE does not renormalise its top-8,
DeepSeek-V3 scores with a sigmoid within expert groups, Switch drops tokens over capacity), and Switch's
experts are ReLU MLPs (d -> h -> d), which take 2/3 of the FLOPs of the SwiGLU experts timed here.

This module imports no torch: the command line lists its names for ``--help``.
"""

from __future__ import annotations

from dataclasses import dataclass

# GridPoint.router names one of these; peers.make_router builds it
ROUTERS = ("topk", "expert_choice", "hash", "lsh", "sinkhorn")
CPU_WEIGHT_BYTES = 256 * 2**20  # expert weights (routed and shared) of a CPU-scaled preset, at most
CPU_TOKENS = 512  # tokens of a preset's batch by default on CPU
CUDA_TOKENS = 8192  # ... and on CUDA: the batch at which the GPU targets judge a preset


@dataclass(frozen=True)
class Preset:
    """One MoE layer of a published model: model width d, expert width h (SwiGLU: w_in d x 2h), E routed
    experts, top-k, and shared experts (each of width h, applied to every token)."""

    name: str
    model: str  # where the figures come from: the model's config.json on the Hugging Face hub
    d_model: int
    d_hidden: int
    num_experts: int
    k: int
    shared_experts: int = 0

    def weight_bytes(self, scale: int = 1, itemsize: int = 4) -> int:
        """Bytes of the expert weights (routed and shared: 3 d h each) with d and h divided by ``scale``."""
        d, h = self.d_model // scale, self.d_hidden // scale
        return (self.num_experts + self.shared_experts) * 3 * d * h * itemsize


PRESETS = {
    preset.name: preset
    for preset in (
        Preset("mixtral-8x7b", "mistralai/Mixtral-8x7B-v0.1", 4096, 14336, 8, 2),
        Preset("olmoe-1b-7b", "allenai/OLMoE-1B-7B-0924", 2048, 1024, 64, 8),
        Preset("qwen3-30b-a3b", "Qwen/Qwen3-30B-A3B", 2048, 768, 128, 8),
        Preset("deepseek-v3", "deepseek-ai/DeepSeek-V3", 7168, 2048, 256, 8, shared_experts=1),
        Preset("switch-base", "google/switch-base-128", 768, 3072, 128, 1),
    )
}


def get_preset(name: str) -> Preset:
    """The preset called ``name``; ValueError naming the known ones otherwise."""
    if name not in PRESETS:
        raise ValueError(f"--preset must be one of {', '.join(PRESETS)}, got {name!r}")
    return PRESETS[name]


def cpu_scale(preset: Preset, itemsize: int = 4, budget: int = CPU_WEIGHT_BYTES) -> int:
    """The smallest power of two f dividing d and h with ``preset.weight_bytes(f, itemsize) <= budget``.

    ValueError when no such f leaves d and h whole (a budget below the smallest divisible shape)."""
    scale = 1
    while preset.weight_bytes(scale, itemsize) > budget:
        scale *= 2
        if preset.d_model % scale or preset.d_hidden % scale:
            raise ValueError(f"preset {preset.name}: no power-of-two scale divides d={preset.d_model} and "
                             f"h={preset.d_hidden} and fits {budget} bytes of weights")
    return scale


@dataclass(frozen=True)
class ResolvedPreset:
    """A preset made concrete for one device: the GridPoint to time and how it was scaled."""

    preset: Preset
    point: object  # GridPoint (imported lazily: this module stays free of torch)
    scale: int  # d and h were divided by this (1: full size)
    device_type: str
    itemsize: int  # bytes per weight the scale was chosen for

    def to_dict(self) -> dict:
        """What a record keeps of the preset: its name, model, the scale and the full-size widths."""
        return {"name": self.preset.name, "model": self.preset.model, "scale": self.scale,
                "d_model_full": self.preset.d_model, "d_hidden_full": self.preset.d_hidden,
                "device_type": self.device_type}

    def describe(self) -> str:
        """One line saying what is timed: full size, or the factor d and h were divided by and why."""
        p, point = self.preset, self.point
        head = f"preset {p.name} ({p.model}): E={p.num_experts} k={p.k} shared={p.shared_experts}"
        if self.scale == 1:
            return (f"{head}, full size d={p.d_model} h={p.d_hidden}, T={point.num_tokens} on "
                    f"{self.device_type}")
        return (f"{head}, d and h divided by {self.scale} on {self.device_type} (d {p.d_model} -> "
                f"{point.d_model}, h {p.d_hidden} -> {point.d_hidden}: expert weights "
                f"{p.weight_bytes(self.scale, self.itemsize) / 2**20:.0f} MiB), T={point.num_tokens}")


def preset_point(name: str, device_type: str = "cpu", tokens: int | None = None, router: str = "topk",
                 itemsize: int = 4) -> ResolvedPreset:
    """The GridPoint of preset ``name`` on ``device_type`` ("cpu": widths scaled by ``cpu_scale`` for
    ``itemsize``-byte weights; "cuda": full size), with ``tokens`` tokens (default CPU_TOKENS or
    CUDA_TOKENS) and ``router``."""
    from .grid import GridPoint

    preset = get_preset(name)
    if device_type not in ("cpu", "cuda"):
        raise ValueError(f"device_type must be 'cpu' or 'cuda', got {device_type!r}")
    scale = cpu_scale(preset, itemsize) if device_type == "cpu" else 1
    if tokens is None:
        tokens = CPU_TOKENS if device_type == "cpu" else CUDA_TOKENS
    point = GridPoint(preset.num_experts, preset.k, tokens, preset.d_model // scale, preset.d_hidden // scale,
                      router=router, shared_experts=preset.shared_experts)
    return ResolvedPreset(preset, point, scale, device_type, itemsize)
