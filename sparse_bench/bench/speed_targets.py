"""The speed targets for the MoE ratio table (CPU, fp32), and how a record stands against them.

``record_targets`` is stored in every ratio-table record (its "targets"); ``target_summary`` counts, per
direction and speed target, the records that meet it and sorts the misses by what stands in their way
(``target_limit``): a miss that needs R below the grouped floor cannot be met by cutting routing overhead. A
verdict whose 95% interval (the record's ``overhead_interval``, a peer's ``speedup_interval``) holds the
target's bound is counted as "within noise": this run's rounds cannot tell met from missed there. Plain
functions of the records' numbers, so the report summarises any records that carry them.

The overhead target judges the part our code controls: t_layer / t_grouped-floor, the grouped floor being
the expert GEMMs alone at the realised per-expert row counts (``floor.grouped_floor_fn``). A peer named
``ours@REV`` (``revision.py``: our layer as of another revision, timed in the same rounds) must never be
faster.
"""

from __future__ import annotations

from .device import is_cpu_float32
from .timing import holds

TARGET_OVERHEAD = {"forward": 1.15, "forward_backward": 1.25}
TARGET_GSHARD_SPEEDUP = 2.0
TARGET_HF_SPEEDUP_WHERE_SLOW = 1.5  # wherever HF's own R >= HF_SLOW_R
HF_SLOW_R = 1.7
TARGET_MEMORY_RATIO = 1.5
REVISION_PEER_PREFIX = "ours@"  # peers that are our own layer at another revision


def targets_apply(record: dict) -> bool:
    """Whether the speed targets judge this record: CPU float32 (older records, without the fields, are)."""
    return is_cpu_float32(record.get("device", "cpu"), record.get("dtype", "float32"))


def record_targets(record: dict, direction: str) -> dict:
    """Which of the speed targets the record meets, the R each speed target needs (``needed_R``: "overhead",
    "hf", "gshard", "revision") and, for each one missed, what stands in its way (``limit``, see
    ``target_limit``)."""
    peers, shape = record["peers"], record["shape"]
    bound = TARGET_OVERHEAD[direction]
    out = {"overhead_max": bound, "overhead_ok": record["overhead"] <= bound}
    needed = {"overhead": shape * bound}  # overhead = R / shape
    noisy = ["overhead"] if holds(record.get("overhead_interval"), bound) else []
    hf = peers.get("hf_mixtral", {})
    if "speedup_of_ours" in hf:
        need = TARGET_HF_SPEEDUP_WHERE_SLOW if hf["ratio_to_floor"] >= HF_SLOW_R else 1.0
        out.update({"hf_speedup_needed": need, "hf_ok": hf["speedup_of_ours"] >= need})
        needed["hf"] = hf["ratio_to_floor"] / need  # speedup >= need  <=>  R <= peer R / need
        noisy += ["hf"] if holds(hf.get("speedup_interval"), need) else []
    gshard = peers.get("gshard_einsum", {})
    if "speedup_of_ours" in gshard:
        out["gshard_ok"] = gshard["speedup_of_ours"] >= TARGET_GSHARD_SPEEDUP
        needed["gshard"] = gshard["ratio_to_floor"] / TARGET_GSHARD_SPEEDUP
        noisy += ["gshard"] if holds(gshard.get("speedup_interval"), TARGET_GSHARD_SPEEDUP) else []
    revisions = [peer for name, peer in peers.items()
                 if name.startswith(REVISION_PEER_PREFIX) and "speedup_of_ours" in peer]
    if revisions:  # never slower than any other revision timed beside it
        out["revision_ok"] = all(peer["speedup_of_ours"] >= 1.0 for peer in revisions)
        needed["revision"] = min(peer["ratio_to_floor"] for peer in revisions)
        noisy += ["revision"] if any(holds(peer.get("speedup_interval"), 1.0) for peer in revisions) else []
    if "memory" in record:
        out["memory_ok"] = record["memory"]["ratio"] <= TARGET_MEMORY_RATIO
    out["needed_R"] = needed
    out["limit"] = {name: target_limit(r, shape) for name, r in needed.items() if not out[f"{name}_ok"]}
    out["within_noise"] = noisy
    return out


# What a missed speed target needs, against the two floors measured in the same run.
LIMITS = ("overhead", "grouped floor", "floor")
# "R" labels the target of records stored before the overhead target replaced it.
TARGET_LABELS = {"overhead": "overhead <= {overhead_max}", "revision": "never slower than ours@REV",
                 "R": "R <= {R_max}", "hf": "vs HF block (1.5x where HF R >= 1.7, else 1x)",
                 "gshard": "2x GShard"}


def target_limit(needed_R: float, shape: float) -> str:
    """Why a speed target that needs ``R <= needed_R`` is missed, given the record's shape (grouped floor / floor):

    - "floor": needed_R < 1, faster than the routed FLOPs at the well-shaped GEMM rate;
    - "grouped floor": needed_R < shape, faster than the expert GEMMs alone at the realised per-expert row
      counts (no routing, gather or combine), so only faster expert products (other kernels, or batched
      products over padded slabs) can meet it, not less overhead;
    - "overhead": shape <= needed_R, reachable by cutting routing, gather and combine time.
    """
    if needed_R < 1.0:
        return "floor"
    return "grouped floor" if needed_R < shape else "overhead"


def target_summary(records: list[dict]) -> list[dict]:
    """Per (direction, speed target): how many records meet it and, of those that miss it, how many per limit.

    Returns rows {"direction", "target" (a name in TARGET_LABELS), "label", "met", "measured", one count per
    name in LIMITS, "within_noise" (verdicts, met or missed, whose interval holds the bound)}, in first-seen
    order.
    """
    rows: dict[tuple[str, str], dict] = {}
    for record in records:
        targets = record.get("targets", {})
        for name in targets.get("needed_R", {}):
            row = rows.setdefault((record["direction"], name), {
                "direction": record["direction"], "target": name, "met": 0, "measured": 0,
                "label": TARGET_LABELS[name].format(R_max=targets.get("R_max"),
                                                   overhead_max=targets.get("overhead_max")),
                **{limit: 0 for limit in LIMITS}, "within_noise": 0})
            row["measured"] += 1
            row["within_noise"] += name in targets.get("within_noise", ())
            if targets[f"{name}_ok"]:
                row["met"] += 1
            else:
                row[targets["limit"][name]] += 1
    return list(rows.values())


def format_target_summary(records: list[dict]) -> str:
    """``target_summary`` as lines: "forward  overhead <= 1.15  met 1/24; missed: overhead 9, grouped floor 14,
    floor 0; within noise 3" (verdicts whose 95% interval holds the bound, met or missed)."""
    return "\n".join(
        f"{row['direction']:16s} {row['label']:46s} met {row['met']}/{row['measured']}; missed: "
        + ", ".join(f"{limit} {row[limit]}" for limit in LIMITS) + f"; within noise {row['within_noise']}"
        for row in target_summary(records))
