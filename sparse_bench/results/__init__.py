"""Records and the results store: what checks, findings and benchmarks measure, and where it is kept.

``open_store(location)`` opens (creating) the SQLite store of a results directory and imports any JSON-lines
files of earlier versions found there; ``ResultsStore.start_run`` / ``add`` / ``finish_run`` write,
``read`` / ``latest`` / ``runs`` / ``export`` read. The report, the command line and the benchmarks all go
through it.
"""

from __future__ import annotations

import os

from .legacy import import_legacy
from .records import (
    FINDING_VERDICTS,
    VERDICTS,
    CheckResult,
    FindingResult,
    RunSpec,
    encode,
    interval_verdict,
    library_versions,
    to_jsonable,
)
from .store import (
    KINDS,
    RESULTS_ENV,
    STORE_FILE,
    Measurement,
    ReadResult,
    ResultsStore,
    Run,
    StoreError,
    measurement_spec,
    results_dir,
    store_path,
)


def open_store(location: str | os.PathLike | None = None, *, create: bool = True) -> ResultsStore:
    """The store of ``location`` (a results directory or a .sqlite file; default ``results_dir()``), with the
    legacy JSON-lines files of that directory imported once."""
    store = ResultsStore(results_dir() if location is None else location, create=create)
    try:
        import_legacy(store, store.path.parent)
    except BaseException:
        store.close()
        raise
    return store


def read_records(location: str | os.PathLike | None, kind: str) -> list[dict]:
    """Every stored record of ``kind`` in the store of ``location`` (oldest first); StoreError when there is
    no store there."""
    with open_store(location, create=False) as store:
        return store.read(kind).records


__all__ = [
    "FINDING_VERDICTS", "KINDS", "RESULTS_ENV", "STORE_FILE", "VERDICTS", "CheckResult", "Measurement",
    "FindingResult", "ReadResult", "ResultsStore", "Run", "RunSpec", "StoreError", "encode", "import_legacy",
    "interval_verdict",
    "library_versions", "measurement_spec", "open_store", "read_records", "results_dir", "store_path", "to_jsonable",
]
