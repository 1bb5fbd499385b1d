"""``python -m sparse_bench.bench ARGS`` is ``sparse-bench bench ARGS``: the MoE ratio table."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from ..cli import main as cli_main

    return cli_main(["bench", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
