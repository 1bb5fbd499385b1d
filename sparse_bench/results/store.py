"""The results store: one SQLite database (``results/results.sqlite``) of runs and their measurements.

A *run* is one invocation that measures something (``sparse-bench run``, a pytest session of the checks, an
audit, a benchmark): when it started and finished, the command, profile and seed, the git commit and whether
the tree was dirty, the machine and library versions, and a JSON object of extras (e.g. the catalogue of
checks it was asked to run). A *measurement* is one record of a run: its kind (``check``, ``audit``,
``bench``, ``distributed``, ``finding``), its name, the spec that identifies it across runs, and the record
itself as canonical JSON.

Why SQLite: each ``add`` is one transaction, so a writer killed at any point leaves every committed
measurement whole and none half-written; WAL mode lets readers and several writers (processes) work at once
(writers wait up to ``BUSY_TIMEOUT_S`` for the lock). A file that is not SQLite, or a SQLite database of
another application, is refused with ``StoreError`` naming it; so is a schema newer than this code.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from .records import encode

STORE_FILE = "results.sqlite"
RESULTS_ENV = "SPARSE_BENCH_RESULTS"
APPLICATION = "sparse-bench results"
SCHEMA_VERSION = 1
KINDS = ("check", "audit", "bench", "distributed", "finding")
BUSY_TIMEOUT_S = 60.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    started REAL NOT NULL,
    finished REAL,
    command TEXT NOT NULL,
    profile TEXT,
    seed INTEGER,
    git_commit TEXT,
    dirty INTEGER,
    machine TEXT NOT NULL,
    versions TEXT NOT NULL,
    extra TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS measurements (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs(id),
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    spec TEXT NOT NULL,
    record TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS measurements_by_kind ON measurements (kind, name, id);
CREATE INDEX IF NOT EXISTS measurements_by_run ON measurements (run_id, id);
"""


_INT64 = (-(2**63), 2**63 - 1)


def _check_int(value, name: str, optional: bool = False) -> None:
    """A SQLite INTEGER: an int (not bool) within int64; None too when ``optional``."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int{' or None' if optional else ''}, got {type(value).__name__}")
    if not _INT64[0] <= value <= _INT64[1]:
        raise ValueError(f"{name} must fit in 64 bits, got {value}")


class StoreError(ValueError):
    """The results store cannot be used: not a SQLite file, another application's database, a newer schema,
    unreadable or unwritable. The message names the file."""


@dataclass(frozen=True)
class Run:
    """One run: provenance of the measurements that point to it (times are Unix seconds)."""

    id: int
    started: float
    finished: float | None
    command: str
    profile: str | None
    seed: int | None
    git_commit: str | None
    dirty: bool | None
    machine: dict
    versions: dict
    extra: dict

    def to_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True)
class Measurement:
    """One stored record: ``record`` is the dict that was added (JSON types)."""

    id: int
    run_id: int
    kind: str
    name: str
    spec: str
    record: dict
    created: float


@dataclass
class ReadResult:
    """What a read returned, and every row it skipped with the reason (rows a foreign writer left malformed)."""

    measurements: list[Measurement] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (row id, reason)

    @property
    def records(self) -> list[dict]:
        return [m.record for m in self.measurements]


def results_dir() -> Path:
    """$SPARSE_BENCH_RESULTS, default ``results`` (relative to the working directory)."""
    return Path(os.environ.get(RESULTS_ENV) or "results")


def store_path(location: str | os.PathLike) -> Path:
    """The database file of ``location``: itself when it names a file (or ends in .sqlite), else
    ``location/results.sqlite``."""
    path = Path(location)
    if path.suffix in (".sqlite", ".db") or path.is_file():
        return path
    return path / STORE_FILE


def measurement_spec(kind: str, record: dict) -> str:
    """The identity of a measurement across runs, as canonical JSON: what must match for two runs' values to
    be compared (the check and its control, profile, seed and params; a benchmark's name and direction)."""
    if kind in ("check", "finding"):
        keys = ("name", "control", "profile", "seed", "params")
    elif kind == "distributed":
        keys = ("name", "world_size", "rank", "backend", "device", "tokens_per_rank", "d_model", "d_hidden",
                "num_experts", "k")
    else:
        keys = ("name", "kind", "direction", "profile")
    return json.dumps({key: record.get(key) for key in keys}, sort_keys=True)


class ResultsStore:
    """A results store on disk. ``ResultsStore(location)`` opens (creating when ``create``) the database of
    ``location`` (a directory or a ``.sqlite`` file). Use as a context manager or call ``close``."""

    def __init__(self, location: str | os.PathLike, *, create: bool = True):
        self.path = store_path(location)
        if not self.path.exists():
            if not create:
                raise StoreError(f"no results store at {self.path}: run `sparse-bench run` first")
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise StoreError(f"cannot create {self.path.parent}: {error.strerror or error}") from None
        elif self.path.is_dir():
            raise StoreError(f"results store {self.path} is a directory, not a SQLite file")
        try:
            self._db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        except sqlite3.Error as error:
            raise StoreError(f"cannot open results store {self.path}: {error}") from None
        self._db.row_factory = sqlite3.Row
        try:
            self._prepare(create)
        except sqlite3.DatabaseError as error:
            self._db.close()
            raise StoreError(f"results store {self.path} is not a sparse-bench SQLite database ({error})") from None

    def _prepare(self, create: bool) -> None:
        tables = {row[0] for row in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if tables and "meta" not in tables:
            raise StoreError(f"{self.path} is a SQLite database of another application (tables: "
                             f"{', '.join(sorted(tables))})")
        if "meta" in tables:
            meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
            if meta.get("application") != APPLICATION:
                raise StoreError(f"{self.path} is a SQLite database of another application "
                                 f"(application={meta.get('application')!r})")
            if int(meta.get("schema_version", "0")) > SCHEMA_VERSION:
                raise StoreError(f"{self.path} has schema version {meta['schema_version']}, newer than this "
                                 f"sparse-bench reads ({SCHEMA_VERSION}): upgrade sparse-bench")
        if not self._readonly():
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = FULL")  # a committed measurement survives a power cut too
        if "meta" not in tables:
            if not create:
                raise StoreError(f"results store {self.path} is empty")
            with self._transaction():  # executescript would commit first: one statement at a time
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    self._db.execute(statement)
                self._db.executemany("INSERT OR IGNORE INTO meta VALUES (?, ?)",
                                     [("application", APPLICATION), ("schema_version", str(SCHEMA_VERSION))])

    def _readonly(self) -> bool:
        return not os.access(self.path, os.W_OK) or not os.access(self.path.parent, os.W_OK)

    def _transaction(self):
        return _Transaction(self._db, self.path)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "ResultsStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- writing ---------------------------------------------------------------------------------------

    def start_run(self, command: str, *, profile: str | None = None, seed: int | None = None,
                  extra: dict | None = None, provenance: dict | None = None) -> int:
        """Record a new run and return its id. provenance: ``provenance.collect()`` (computed when None)."""
        from .provenance import collect

        if not isinstance(command, str):
            raise TypeError(f"command must be a str, got {type(command).__name__}")
        if profile is not None and not isinstance(profile, str):
            raise TypeError(f"profile must be a str or None, got {type(profile).__name__}")
        _check_int(seed, "seed", optional=True)
        if extra is not None and not isinstance(extra, dict):
            raise TypeError(f"extra must be a dict or None, got {type(extra).__name__}")
        info = collect() if provenance is None else provenance
        with self._transaction():
            cursor = self._db.execute(
                "INSERT INTO runs (started, command, profile, seed, git_commit, dirty, machine, versions, extra) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (time.time(), command, profile, seed, info.get("git_commit"),
                 None if info.get("dirty") is None else int(info["dirty"]),
                 encode(info.get("machine", {})), encode(info.get("versions", {})), encode(extra or {})))
        return int(cursor.lastrowid)

    def finish_run(self, run_id: int, extra: dict | None = None) -> None:
        """Stamp the run's end time (and merge ``extra`` into its extras)."""
        _check_int(run_id, "run_id")
        with self._transaction():
            row = self._db.execute("SELECT extra FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise StoreError(f"{self.path}: no run {run_id}")
            merged = {**json.loads(row["extra"]), **(extra or {})}
            self._db.execute("UPDATE runs SET finished = ?, extra = ? WHERE id = ?",
                             (time.time(), encode(merged), run_id))

    def add(self, kind: str, records: Iterable, run_id: int) -> int:
        """Store ``records`` (CheckResults or dicts of JSON types, each with a ``name``) of ``kind`` in one
        transaction; returns how many. Nothing is written if any record is invalid."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        _check_int(run_id, "run_id")
        rows = []
        now = time.time()
        for record in records:
            text = encode(record)
            data = json.loads(text)
            if not isinstance(data.get("name"), str):
                raise ValueError(f"a {kind} record needs a string 'name', got {data.get('name')!r}")
            rows.append((run_id, kind, data["name"], measurement_spec(kind, data), text, now))
        with self._transaction():
            if self._db.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
                raise StoreError(f"{self.path}: no run {run_id} to add measurements to")
            self._db.executemany(
                "INSERT INTO measurements (run_id, kind, name, spec, record, created) VALUES (?, ?, ?, ?, ?, ?)",
                rows)
        return len(rows)

    # -- reading ---------------------------------------------------------------------------------------

    def runs(self) -> list[Run]:
        """Every run, oldest first."""
        return [self._run(row) for row in self._query("SELECT * FROM runs ORDER BY id")]

    def run(self, run_id: int) -> Run:
        _check_int(run_id, "run_id")
        rows = self._query("SELECT * FROM runs WHERE id = ?", (run_id,))
        if not rows:
            raise StoreError(f"{self.path}: no run {run_id}")
        return self._run(rows[0])

    def read(self, kind: str | None = None, *, run_id: int | None = None, name: str | None = None) -> ReadResult:
        """Measurements (oldest first), optionally of one kind, run and name; malformed rows are skipped and
        listed in ``skipped`` with the reason, never returned."""
        _check_int(run_id, "run_id", optional=True)
        clauses, params = [], []
        for column, value in (("kind", kind), ("run_id", run_id), ("name", name)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        result = ReadResult()
        for row in self._query(f"SELECT * FROM measurements{where} ORDER BY id", tuple(params)):
            try:
                record = json.loads(row["record"])
            except (TypeError, json.JSONDecodeError) as error:
                result.skipped.append((row["id"], f"record is not JSON ({error})"))
                continue
            if not isinstance(record, dict) or record.get("name") != row["name"]:
                result.skipped.append((row["id"], "record is not an object with the row's name"))
                continue
            if row["kind"] not in KINDS:
                result.skipped.append((row["id"], f"unknown kind {row['kind']!r}"))
                continue
            result.measurements.append(Measurement(row["id"], row["run_id"], row["kind"], row["name"],
                                                   row["spec"], record, row["created"]))
        return result

    def latest(self, kind: str) -> ReadResult:
        """The newest measurement of each spec of ``kind`` (later rows win)."""
        result = self.read(kind)
        newest: dict[str, Measurement] = {}
        for measurement in result.measurements:
            newest[measurement.spec] = measurement
        return ReadResult(sorted(newest.values(), key=lambda m: m.id), result.skipped)

    def export(self) -> dict:
        """Everything, as one JSON object: ``{"runs": [...], "measurements": [...], "skipped": [...]}``."""
        result = self.read()
        return {
            "application": APPLICATION,
            "schema_version": SCHEMA_VERSION,
            "runs": [run.to_dict() for run in self.runs()],
            "measurements": [{"id": m.id, "run_id": m.run_id, "kind": m.kind, "name": m.name,
                              "spec": json.loads(m.spec), "record": m.record, "created": m.created}
                             for m in result.measurements],
            "skipped": [{"id": row, "reason": reason} for row, reason in result.skipped],
        }

    def meta(self, key: str) -> str | None:
        row = self._query("SELECT value FROM meta WHERE key = ?", (key,))
        return row[0]["value"] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self._transaction():
            self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def _query(self, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
        try:
            return self._db.execute(sql, params).fetchall()
        except sqlite3.DatabaseError as error:
            raise StoreError(f"cannot read results store {self.path}: {error}") from None

    def _run(self, row: sqlite3.Row) -> Run:
        def obj(text):
            try:
                value = json.loads(text)
            except (TypeError, json.JSONDecodeError):
                return {}
            return value if isinstance(value, dict) else {}

        return Run(row["id"], row["started"], row["finished"], row["command"], row["profile"], row["seed"],
                   row["git_commit"], None if row["dirty"] is None else bool(row["dirty"]),
                   obj(row["machine"]), obj(row["versions"]), obj(row["extra"]))


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error): the write lock is taken up front, so two
    writers never deadlock upgrading a read lock; sqlite errors become StoreError naming the file."""

    def __init__(self, db: sqlite3.Connection, path: Path):
        self.db, self.path = db, path

    def __enter__(self):
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as error:
            raise StoreError(f"cannot write results store {self.path}: {error}") from None

    def __exit__(self, kind, value, traceback):
        if kind is None:
            try:
                self.db.execute("COMMIT")
            except sqlite3.Error as error:
                self.db.execute("ROLLBACK")
                raise StoreError(f"cannot write results store {self.path}: {error}") from None
        else:
            self.db.execute("ROLLBACK")
            if isinstance(value, sqlite3.Error):
                raise StoreError(f"cannot write results store {self.path}: {value}") from value
        return False
