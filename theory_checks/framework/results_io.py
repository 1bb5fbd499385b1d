"""Results files: JSON lines, appended atomically, read back with corruption detected.

``append_records`` rewrites the whole file: existing bytes + new lines go to a temporary file in the same
directory, which is flushed, fsync'ed and moved over the old file with ``os.replace`` (atomic on POSIX), under
an advisory lock so concurrent writers do not lose each other's records. A crash at any point leaves either
the old file or the new one, never a mix. ``read_records`` refuses a file with a bad line (including a last
line without its newline, the mark of a torn write from a non-atomic writer) and names the file and line.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from pathlib import Path
from typing import Iterable

from .result import CheckResult, to_jsonable

RESULTS_ENV = "SPARSE_BENCH_RESULTS"
CHECKS_FILE = "checks.jsonl"


class CorruptResultsError(ValueError):
    """A results file has a line that is not a complete JSON object; the message names the file and line."""

    def __init__(self, path: Path, line: int, reason: str):
        self.path, self.line, self.reason = Path(path), line, reason
        super().__init__(f"corrupt results file {path}, line {line}: {reason}")


def results_dir() -> Path:
    """$SPARSE_BENCH_RESULTS, default ``results`` (relative to the working directory)."""
    return Path(os.environ.get(RESULTS_ENV) or "results")


def default_results_path() -> Path:
    """``results_dir() / checks.jsonl``: where check records go."""
    return results_dir() / CHECKS_FILE


@contextlib.contextmanager
def _locked(path: Path):
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def _encode(record) -> str:
    data = record.to_dict() if isinstance(record, CheckResult) else to_jsonable(record)
    if not isinstance(data, dict):
        raise TypeError(f"a record must be a dict or CheckResult, got {type(record).__name__}")
    return json.dumps(data, sort_keys=True, allow_nan=False) + "\n"


def append_records(path: str | os.PathLike, records: Iterable) -> Path:
    """Append records (CheckResult or dicts of JSON types) to the JSON-lines file ``path``, atomically.

    The existing file is validated first (CorruptResultsError rather than appending to a broken file).
    Returns the path written.
    """
    path = Path(path)
    lines = [_encode(r) for r in records]
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path):
        old = path.read_bytes() if path.exists() else b""
        _parse(path, old)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(old)
                out.write("".join(lines).encode("utf-8"))
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # make the rename itself durable
        finally:
            os.close(dir_fd)
    return path


def _parse(path: Path, raw: bytes) -> list[dict]:
    if not raw:
        return []
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise CorruptResultsError(path, line, "not UTF-8 text") from None
    lines = text.split("\n")
    if lines[-1] != "":
        raise CorruptResultsError(path, len(lines), "last line has no newline (partial write)")
    records = []
    for number, line in enumerate(lines[:-1], start=1):
        try:
            value = json.loads(line)
        except json.JSONDecodeError as err:
            raise CorruptResultsError(path, number, f"invalid JSON ({err.msg})") from None
        if not isinstance(value, dict):
            raise CorruptResultsError(path, number, f"expected a JSON object, got {type(value).__name__}")
        records.append(value)
    return records


def read_records(path: str | os.PathLike) -> list[dict]:
    """All records of a JSON-lines results file (missing file -> []); CorruptResultsError on any bad line."""
    path = Path(path)
    if not path.exists():
        return []
    return _parse(path, path.read_bytes())


def read_check_results(path: str | os.PathLike) -> list[CheckResult]:
    """The records of ``path`` that are CheckResults (records with a ``verdict``), as CheckResult objects."""
    out = []
    for number, rec in enumerate(read_records(path), start=1):
        if "verdict" in rec:
            try:
                out.append(CheckResult.from_dict(rec))
            except (TypeError, ValueError) as err:
                raise CorruptResultsError(Path(path), number, f"not a CheckResult ({err})") from None
    return out
