"""Import the JSON-lines results files of earlier versions (``checks.jsonl``, ``audit.jsonl``, ``bench.jsonl``,
``distributed.jsonl``) into the store, once each: a file's SHA-256 is kept in the store's meta table, so an
unchanged file is never imported twice. The files themselves are left as they are."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .store import ResultsStore, StoreError

LEGACY_FILES = {"checks.jsonl": "check", "audit.jsonl": "audit", "bench.jsonl": "bench",
                "distributed.jsonl": "distributed"}


def parse_jsonl(path: Path, raw: bytes) -> list[dict]:
    """The JSON objects of a JSON-lines file; StoreError naming file and line on any bad line."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise StoreError(f"corrupt results file {path}, line {line}: not UTF-8 text") from None
    lines = text.split("\n")
    if lines[-1] != "":
        raise StoreError(f"corrupt results file {path}, line {len(lines)}: last line has no newline "
                         "(partial write)")
    records = []
    for number, line in enumerate(lines[:-1], start=1):
        try:
            value = json.loads(line)
        except json.JSONDecodeError as err:
            raise StoreError(f"corrupt results file {path}, line {number}: invalid JSON ({err.msg})") from None
        if not isinstance(value, dict) or not isinstance(value.get("name"), str):
            raise StoreError(f"corrupt results file {path}, line {number}: expected a JSON object with a "
                             "string 'name'")
        records.append(value)
    return records


def import_legacy(store: ResultsStore, directory: Path) -> int:
    """Import every legacy file of ``directory`` not imported before, each as one run; returns the number of
    records imported."""
    total = 0
    for file_name, kind in LEGACY_FILES.items():
        path = Path(directory) / file_name
        if not path.is_file():
            continue
        try:
            raw = path.read_bytes()
        except OSError as error:
            raise StoreError(f"cannot read results file {path}: {error.strerror or error}") from None
        digest = hashlib.sha256(raw).hexdigest()
        key = f"imported:{file_name}"
        if store.meta(key) == digest:
            continue
        records = parse_jsonl(path, raw)
        commits = {(r.get("versions") or {}).get("git_commit") for r in records}
        run_id = store.start_run(f"import {file_name}", provenance={
            "git_commit": commits.pop() if len(commits) == 1 else None, "dirty": None,
            "machine": {}, "versions": {}})
        store.add(kind, records, run_id)
        store.finish_run(run_id, {"imported_from": str(path)})
        store.set_meta(key, digest)
        total += len(records)
    return total
