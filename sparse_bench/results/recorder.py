"""``Recorder``: one run in the store, started on its first record and finished on ``close``."""

from __future__ import annotations

import os
import shlex
import sys

from . import open_store


def current_command() -> str:
    """This process's command line, as a shell would show it."""
    return shlex.join([os.path.basename(sys.argv[0]), *sys.argv[1:]]) if sys.argv and sys.argv[0] else "python"


class Recorder:
    """Writes measurements of one run to the store of ``location`` (default ``results_dir()``).

    The run is created by the first ``add`` (so a process that measures nothing leaves no empty run), with
    ``command`` (default: this process's command line), ``profile``, ``seed`` and ``extra``; every ``add`` is
    its own transaction, so what was added before a crash stays. Use as a context manager or call ``close``.
    """

    def __init__(self, location=None, *, command: str | None = None, profile: str | None = None,
                 seed: int | None = None, extra: dict | None = None):
        self.location, self.command = location, command
        self.profile, self.seed, self.extra = profile, seed, extra
        self.store = None
        self.run_id: int | None = None
        self.path = None  # the database file, once started

    def start(self) -> int:
        """Open the store and start the run now (idempotent); returns the run id."""
        if self.run_id is None:
            self.store = open_store(self.location)
            self.path = self.store.path
            self.run_id = self.store.start_run(self.command or current_command(), profile=self.profile,
                                               seed=self.seed, extra=self.extra)
        return self.run_id

    def add(self, kind: str, records) -> int:
        records = list(records)
        if not records:
            return 0
        self.start()
        return self.store.add(kind, records, self.run_id)

    def close(self, extra: dict | None = None) -> None:
        if self.store is not None:
            self.store.finish_run(self.run_id, extra)
            self.store.close()
            self.store = None

    def __enter__(self) -> "Recorder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def record_once(kind: str, records, location=None, **run) -> int:
    """Store ``records`` as one run of their own (keyword arguments as ``Recorder``); returns how many."""
    with Recorder(location, **run) as recorder:
        return recorder.add(kind, records)
