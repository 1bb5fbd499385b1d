"""Our layer as of another git revision, as a ratio-table peer: "is this tree slower than main?" answered side
by side in one process, in the same timing rounds, on the same weights.

``import_revision(rev)`` extracts the ``sparse_bench`` package of ``rev`` (``git archive``) into a cache
directory under another top-level name, ``sparse_bench_at_<sha12>``, and imports it: every import inside the
package is relative, so the copy runs its own code beside ours. ``revision_layer`` builds that revision's
layer for a grid point and loads our layer's weights into it (where the parameter names differ, it is built
from the same seed), so the two compute one function; ``build_case`` checks that they agree before timing.
"""

from __future__ import annotations

import importlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from types import ModuleType

from torch import nn

from .speed_targets import REVISION_PEER_PREFIX

PACKAGE = "sparse_bench"


class RevisionError(ValueError):
    """The revision cannot be resolved or its package extracted (not a git checkout, unknown revision)."""


def _git(args: list[str], repo: Path) -> bytes:
    try:
        return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True).stdout
    except FileNotFoundError:
        raise RevisionError("git is not installed: a revision peer needs it") from None
    except subprocess.CalledProcessError as error:
        message = error.stderr.decode(errors="replace").strip()
        raise RevisionError(f"git {' '.join(args)} failed in {repo}: {message}") from None


def repository_root() -> Path:
    """The checkout this package was imported from (a revision peer needs its history)."""
    here = Path(__file__).resolve().parents[2]
    return Path(_git(["rev-parse", "--show-toplevel"], here).decode().strip())


def resolve(rev: str, repo: Path | None = None) -> str:
    """The full commit hash of ``rev`` (a branch, tag, or hash prefix)."""
    repo = repository_root() if repo is None else repo
    return _git(["rev-parse", "--verify", f"{rev}^{{commit}}"], repo).decode().strip()


def cache_root() -> Path:
    """Where extracted revisions live: $SPARSE_BENCH_CACHE or the system's temporary directory."""
    return Path(os.environ.get("SPARSE_BENCH_CACHE") or tempfile.gettempdir()) / "sparse-bench-revisions"


def peer_name(sha: str) -> str:
    return f"{REVISION_PEER_PREFIX}{sha[:12]}"


def import_revision(rev: str, repo: Path | None = None) -> ModuleType:
    """The ``sparse_bench`` package of ``rev``, imported as ``sparse_bench_at_<sha12>``. Extraction goes to a
    fresh directory renamed into place, so a crash never leaves a half-written package to import."""
    repo = repository_root() if repo is None else repo
    sha = resolve(rev, repo)
    name = f"{PACKAGE}_at_{sha[:12]}"
    if name in sys.modules:
        return sys.modules[name]
    root = cache_root() / sha[:12]
    if not (root / name / "__init__.py").exists():
        archive = _git(["archive", "--format=tar", sha, PACKAGE], repo)
        root.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{sha[:12]}-"))
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(staging, filter="data")
        (staging / PACKAGE).rename(staging / name)
        try:
            staging.rename(root)
        except OSError:  # another process put it there first: theirs is complete too
            if not (root / name / "__init__.py").exists():
                raise
    if str(root) not in sys.path:
        sys.path.append(str(root))
    return importlib.import_module(name)


def revision_layer(rev: str, layer: nn.Module, point, seed: int, dispatch: str, device, dtype) -> nn.Module:
    """The MoE layer of revision ``rev`` for grid point ``point`` (built by that revision's ``build_case`` with
    the same seed, device and dtype), holding ``layer``'s weights where its parameter names are ours."""
    package = import_revision(rev).__name__
    peers = importlib.import_module(f"{package}.bench.peers")
    grid = importlib.import_module(f"{package}.bench.grid")
    theirs = peers.build_case(grid.GridPoint(**point.to_dict()), seed=seed, dispatch=dispatch, peers=(),
                              device=device, dtype=dtype).layer
    ours = layer.state_dict()
    if set(theirs.state_dict()) == set(ours):
        theirs.load_state_dict(ours)
    return theirs.eval()
