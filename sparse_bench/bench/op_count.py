"""Count the ATen operations a call issues: a cost model for launch-bound shapes (on a GPU each one is at
least one kernel launch), and the count of those that read a value on the host (a synchronisation on CUDA).

``count_ops(fn)`` runs fn once under a ``TorchDispatchMode`` that sees every ATen call below autograd (views
and factory functions included, the inner calls of a composite operation too where ATen dispatches them).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Callable
from unittest import mock

import torch
from torch.utils._python_dispatch import TorchDispatchMode

_BOOL_INDEX = (torch.bool, torch.uint8)  # a mask index: the result's size is the mask's count of True


def reads_on_host(func, args: tuple, kwargs: dict) -> bool:
    """Whether this ATen call reads a tensor value on the host (on CUDA: waits for the device).

    PyTorch tags such operations: ``data_dependent_output`` (a value returned to Python: ``.item()``,
    ``bool(t)``, ``torch.equal``) and ``dynamic_output_shape`` (an output whose size depends on values:
    ``nonzero``, ``masked_select``, ``bincount``, ``unique``...). Two tagged operations read nothing in the
    forms given: indexing with integer index tensors, and ``repeat_interleave`` told its output size.
    """
    tags = func.tags
    if torch.Tag.data_dependent_output in tags or func.overloadpacket is torch.ops.aten.is_nonzero:
        return True
    if torch.Tag.dynamic_output_shape not in tags:
        return False
    packet = func.overloadpacket
    if packet is torch.ops.aten.index:
        indices = args[1] if len(args) > 1 else kwargs.get("indices", ())
        return any(i is not None and i.dtype in _BOOL_INDEX for i in indices)
    if packet is torch.ops.aten.repeat_interleave:
        return kwargs.get("output_size") is None
    return True


@dataclass
class OpCounts:
    """ATen calls by name (``aten.mm``, ...), and how many of them read a value on the host."""

    ops: Counter = field(default_factory=Counter)
    host_reads: Counter = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.ops.values())

    @property
    def host_syncs(self) -> int:
        return sum(self.host_reads.values())


class CountOps(TorchDispatchMode):
    """Within this mode, every ATen call is counted into ``self.counts`` (then run as it would be), and so is
    every ``Tensor.tolist()``: a host read that issues no ATen call for a CPU tensor (on CUDA it is a copy to
    the host), so it is counted by wrapping the method for the duration. Not thread-safe."""

    def __init__(self):
        super().__init__()
        self.counts = OpCounts()
        self._patch = None

    def __enter__(self):
        tolist, counts = torch.Tensor.tolist, self.counts

        def counted_tolist(t):
            counts.host_reads["Tensor.tolist"] += 1
            return tolist(t)

        self._patch = mock.patch.object(torch.Tensor, "tolist", counted_tolist)
        self._patch.start()
        return super().__enter__()

    def __exit__(self, *exc):
        self._patch.stop()
        return super().__exit__(*exc)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = f"aten.{func.overloadpacket.__name__}"
        self.counts.ops[name] += 1
        if reads_on_host(func, args, kwargs):
            self.counts.host_reads[name] += 1
        return func(*args, **kwargs)


def count_ops(fn: Callable[[], object]) -> OpCounts:
    """The ATen calls of one ``fn()``, and those that read on the host."""
    with CountOps() as mode:
        fn()
    return mode.counts
