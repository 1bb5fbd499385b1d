"""Findings: published claims re-measured at their source's scale, each with a verdict (docs/THEORY.md §D).

A finding is not a check: it asks whether a claim of a source holds when measured again, and reads
``reproduced``, ``not reproduced`` or ``inconclusive`` (the interval straddles the decision). "Not reproduced"
is a result, not a failure. What gates the test suite are each finding's two planted settings: one in which
the claim holds by construction (must read ``reproduced``) and one in which it fails by construction (must
read ``not reproduced``).

``registry.register_finding`` declares a finding (claim, reading, the source's numbers, a ``Scale`` per
profile, a pre-registered ``decision``, the two controls); ``run_finding`` / ``run_control`` measure it into
``sparse_bench.results.FindingResult`` records; ``decision`` holds the intervals over seeds and the decision
rules. Modules of findings: ``table1`` (the paper's Table 1 as three findings), ``lsh_vs_dense`` (Fig 2b:
the LSH model against a dense model of matched FLOPs as its buckets multiply), ``random_hash`` (Fig 4:
active units chosen by a uniform random hash, by an LSH, or all of them), ``theorem41_rates`` (Theorem 4.1's
rates in the buckets, flat in d, linear in L), ``lemma42_geometry`` (Lemma 4.2's bucket diameters and count),
``theorem43_separation`` (Theorem 4.3's compute separation of dense from LSH); ``lsh_common`` holds what those
three share.
"""

from .decision import FAMILY_CONF, Decision, above, below, combine, inside, seed_interval
from .registry import (
    CONTROL_PROFILE,
    CONTROLS,
    EXPECTED,
    FINDINGS,
    Component,
    Reading,
    RegisteredFinding,
    Scale,
    findings_catalogue,
    get_finding,
    load_all_findings,
    register_finding,
    run_control,
    run_finding,
)

__all__ = ["CONTROL_PROFILE", "CONTROLS", "EXPECTED", "FAMILY_CONF", "FINDINGS", "Component", "Decision",
           "Reading", "RegisteredFinding", "Scale", "above", "below", "combine", "findings_catalogue",
           "get_finding", "inside", "load_all_findings", "register_finding", "run_control", "run_finding",
           "seed_interval"]
