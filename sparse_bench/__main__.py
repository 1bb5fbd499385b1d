"""``python -m sparse_bench`` is the ``sparse-bench`` command line."""

import sys

from .cli import main

sys.exit(main())
