"""The speed section: the MoE ratio table (R, shape, overhead, peers, memory) and its chart (R per grid point
with its interval, forward and forward + backward), from bench records.

A ratio-table record (``kind == "moe_ratio_table"``, written by ``sparse_bench.bench``) holds the layer's
time relative to the GEMM floor (R = shape x overhead), each peer's ratio to the same floor and our speedup
over it, the weight-traffic floor (which bound applies, and R against the larger floor), the peak-memory ratio
and which speed targets it meets (a miss with what stands in its way: ``bench.speed_targets.target_limit``),
the host allocator it ran under (``bench.allocator``), and how much faster the floor ran on all threads than
on one (a contended machine is flagged: its ratios are not comparable with an idle machine's). R and the
speedups carry their 95% interval from the per-round ratios where recorded ("1.23 [1.19, 1.31]"). Only the
newest record per name is shown; a name includes the device and dtype unless CPU float32 (the only setting
the targets judge).
"""

from __future__ import annotations

from ..bench.device import is_cpu_float32
from ..bench.speed_targets import LIMITS, target_summary, targets_apply
from .cells import fmt
from .figures import EmbeddedFigure, figure_style, new_figure, to_data_uri

COLUMNS = (
    "grid point",
    "direction",
    "strategy",
    "R",
    "shape",
    "overhead",
    "bound",
    "R vs max(floor, weight traffic)",
    "router share",
    "HF R",
    "speedup vs HF",
    "GShard R",
    "speedup vs GShard",
    "peak mem / budget",
    "floor speedup, 1 to N threads",
    "targets met",
    "host allocator",
)


def latest_ratio_records(records: list[dict], kind: str = "moe_ratio_table") -> list[dict]:
    """Newest record of ``kind`` per name, in order of first appearance."""
    latest: dict[str, dict] = {}
    for record in records:
        if record.get("kind") == kind:
            if record["name"] not in latest or record.get("timestamp", 0) >= latest[record["name"]].get(
                "timestamp", 0
            ):
                latest[record["name"]] = record
    return list(latest.values())


def _label(record: dict) -> str:
    """A grid point as "E8 k2 T512 h256" (experts, k, tokens, expert width); other fields appended as k=v, and
    the device and dtype unless CPU float32 ("E8 k2 T512 h256 cuda:0 bfloat16")."""
    point = dict(record.get("point", {}))
    setting = (record.get("device", "cpu"), record.get("dtype", "float32"))
    suffix = [] if is_cpu_float32(*setting) else list(setting)
    if "label" in point:
        return " ".join([point["label"], *suffix])
    short = {"num_experts": "E", "k": "k", "num_tokens": "T", "d_hidden": "h"}
    parts = [f"{tag}{point.pop(key)}" for key, tag in short.items() if key in point]
    point.pop("d_model", None), point.pop("activation", None)
    return " ".join(parts + [f"{k}={v}" for k, v in point.items()] + suffix)


def _peer(record: dict, name: str, key: str):
    return record.get("peers", {}).get(name, {}).get(key)


def with_interval(value, interval: dict | None) -> str:
    """A ratio and its confidence interval, "1.23 [1.19, 1.31]"; the ratio alone where none was recorded."""
    if value is None or interval is None:
        return fmt(value, 3)
    return f"{fmt(value, 3)} [{fmt(interval['low'], 3)}, {fmt(interval['high'], 3)}]"


def ratio_table(records: list[dict]) -> tuple[list[str], list[list[str]]]:
    """Columns and formatted rows of the ratio table."""
    rows = []
    for r in latest_ratio_records(records):
        met = _targets_met(r.get("targets", {})) if targets_apply(r) else "not judged (targets: CPU float32)"
        rows.append(
            [
                _label(r),
                r.get("direction", ""),
                r.get("chosen_strategy", r.get("dispatch", "")),
                with_interval(r.get("R"), r.get("R_interval")),
                fmt(r.get("shape"), 3),
                fmt(r.get("overhead"), 3),
                r.get("bound", ""),
                fmt(r.get("R_roofline"), 3),
                fmt(r.get("router_share"), 3),
                fmt(_peer(r, "hf_mixtral", "ratio_to_floor"), 3),
                with_interval(_peer(r, "hf_mixtral", "speedup_of_ours"),
                              _peer(r, "hf_mixtral", "speedup_interval")),
                fmt(_peer(r, "gshard_einsum", "ratio_to_floor"), 3),
                with_interval(_peer(r, "gshard_einsum", "speedup_of_ours"),
                              _peer(r, "gshard_einsum", "speedup_interval")),
                fmt(r.get("memory", {}).get("ratio"), 3),
                _thread_scaling(r.get("thread_scaling")),
                met,
                r.get("allocator", {}).get("allocator", "unrecorded"),
            ]
        )
    return list(COLUMNS), rows


def _thread_scaling(scaling: dict | None) -> str:
    """"1.97 on 2 threads", with "(contended)" where the run flagged its machine as contended; "" where not
    measured (one thread, a GPU, or a record from before it was)."""
    if not scaling:
        return ""
    text = f"{fmt(scaling['speedup'], 3)} on {scaling['threads']} threads"
    return f"{text} (contended)" if scaling["contended"] else text


def _targets_met(targets: dict) -> str:
    """"R NO (grouped floor), hf yes (within noise), ...": each target met or not, a miss with its limit when
    recorded, and "within noise" where the verdict's 95% interval holds the target's bound."""
    limits, noisy = targets.get("limit", {}), targets.get("within_noise", ())
    cells = []
    for key, ok in targets.items():
        if key.endswith("_ok"):
            name = key[:-3]
            notes = [limits[name]] if not ok and name in limits else []
            notes += ["within noise"] if name in noisy else []
            cells.append(f"{name} {'yes' if ok else 'NO'}" + (f" ({'; '.join(notes)})" if notes else ""))
    return ", ".join(cells)


TARGET_COLUMNS = ("direction", "target", "met", *(f"missed: {limit}" for limit in LIMITS),
                  "within noise (95% interval holds the bound)")


def target_table(records: list[dict]) -> tuple[list[str], list[list[str]]]:
    """Columns and rows of ``bench.speed_targets.target_summary`` over the newest ratio-table records."""
    rows = [[row["direction"], row["label"], f"{row['met']}/{row['measured']}",
             *(str(row[limit]) for limit in LIMITS), str(row["within_noise"])]
            for row in target_summary(latest_ratio_records(records))]
    return list(TARGET_COLUMNS), rows


COMPONENT_COLUMNS = ("component ratio", "measured", "target", "met")


def component_table(records: list[dict]) -> tuple[list[str], list[list[str]]]:
    """Columns and rows of the component ratios (routers, DSM, conv/pool; ``sparse_bench.bench.components``)."""
    rows = [[r["name"].removeprefix("component/"), with_interval(r.get("ratio"), r.get("interval")),
             r.get("target", ""),
             ("yes" if r.get("target_ok") else "NO") + (" (within noise)" if r.get("within_noise") else "")]
            for r in latest_ratio_records(records, "component_ratio")]
    return list(COMPONENT_COLUMNS), rows


DIRECTION_TITLES = {"forward": "forward", "forward_backward": "forward + backward"}


def ratio_figure(records: list[dict]) -> EmbeddedFigure | None:
    """R of our layer per grid point with its 95% interval as error bars, one panel per direction (forward,
    forward + backward), each timed peer's R beside it, and the floor R = 1 drawn."""
    latest = latest_ratio_records(records)
    if not latest:
        return None
    present = {r.get("direction", "") for r in latest}
    directions = [d for d in DIRECTION_TITLES if d in present] + sorted(present - set(DIRECTION_TITLES))
    labels = list(dict.fromkeys(_label(r) for r in latest))  # one row per grid point, in measuring order
    peers = sorted({p for r in latest for p, v in r.get("peers", {}).items() if "ratio_to_floor" in v})
    with figure_style():
        fig, axes = new_figure(5.2 * len(directions) + 1.6, 0.32 * len(labels) + 2.4, layout="constrained",
                               ncols=len(directions), sharey=True, squeeze=False)
        for ax, direction in zip(axes[0], directions):
            _ratio_panel(ax, [r for r in latest if r.get("direction", "") == direction], labels, peers)
            ax.set_title(DIRECTION_TITLES.get(direction, direction), fontsize=11)
        axes[0][0].set_yticks(range(len(labels)), labels, fontsize=8)
        handles, names = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, names, loc="outside lower center", ncol=len(names), fontsize=8, frameon=False)
        fig.suptitle("MoE layer time relative to the GEMM floor: R = t / t_floor (lower is better)",
                     fontsize=11)
        uri = to_data_uri(fig)
    caption = (
        "Our layer's R per grid point, with its 95% interval from the per-round ratios as error bars; each "
        "timed peer's R (its time over the same floor) beside it; the dashed line is the floor, R = 1. "
        "Measured side by side in one process; the floor is the routed expert FFN's FLOPs at the GEMM rate "
        "measured on a well-shaped block in the same run."
    )
    return EmbeddedFigure("speed-R", "Speed: R per grid point, forward and forward + backward", caption, uri)


PEER_MARKERS = ("s", "^", "D", "v", "P", "X")


def _ratio_panel(ax, records: list[dict], labels: list[str], peers: list[str]) -> None:
    """One direction's panel: rows = grid points (``labels``), log-scale R."""
    row = {label: i for i, label in enumerate(labels)}
    ys, xs, lo, hi = [], [], [], []
    for r in records:
        if r.get("R") is None:
            continue
        interval = r.get("R_interval") or {"low": r["R"], "high": r["R"]}
        ys.append(row[_label(r)])
        xs.append(r["R"])
        lo.append(max(r["R"] - interval["low"], 0.0))
        hi.append(max(interval["high"] - r["R"], 0.0))
    ax.errorbar(xs, ys, xerr=[lo, hi], fmt="o", ms=5, capsize=3, color="#1f4e9c", label="ours (95% interval)",
                zorder=3)
    for marker, peer in zip(PEER_MARKERS, peers):
        points = [(row[_label(r)], _peer(r, peer, "ratio_to_floor")) for r in records
                  if _peer(r, peer, "ratio_to_floor") is not None]
        if points:
            ax.plot([x for _, x in points], [y for y, _ in points], marker, ms=5, mfc="none", label=peer)
    ax.axvline(1.0, color="black", lw=1, ls="--", label="GEMM floor, R = 1")
    ax.set_xscale("log")
    ax.set_xlabel("R = t / t_floor")
    ax.set_ylim(len(labels) - 0.5, -0.5)
