"""A clause: one named contract check and the rule selecting it; a failure is an AssertionError naming it."""

from __future__ import annotations

import functools
from typing import Callable


def clause(applies: Callable[[object], bool], when: str) -> Callable:
    """Decorate a check ``check(obj, ...)`` into a clause.

    applies: obj -> whether the clause is part of obj's contract (read from its declared capabilities).
    when: the same rule in words, for listings. The clause raises AssertionError prefixed with its name, for a
    failed assertion and for any other exception alike (a crash is a failure to meet the contract).
    """

    def decorate(check: Callable) -> Callable:
        @functools.wraps(check)
        def run(obj, *args, **kwargs) -> None:
            try:
                check(obj, *args, **kwargs)
            except AssertionError as error:
                raise AssertionError(f"{check.__name__}: {error}") from error
            except Exception as error:
                raise AssertionError(f"{check.__name__}: raised {type(error).__name__}: {error}") from error

        run.applies = applies
        run.selected_when = when
        return run

    return decorate


def run_clauses(label: str, clauses: list[Callable], call: Callable[[Callable], None]) -> None:
    """Run every clause with ``call(clause)``; raise one AssertionError listing each failed clause's
    message."""
    failures = []
    for check in clauses:
        try:
            call(check)
        except AssertionError as error:
            failures.append(str(error))
    if failures:
        listing = "\n".join(f"  - {message}" for message in failures)
        raise AssertionError(f"{label} fails {len(failures)} of {len(clauses)} clauses:\n{listing}")
