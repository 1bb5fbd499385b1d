"""The backend switch: chosen from the tensor's device alone (no GPU query), forced by ``use_backend``; and
the reference modules reach device kernels only through it (their imports, read with ast)."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

import sparse_bench
from sparse_bench import kernels
from sparse_bench.device_path import device_path_on_cpu
from sparse_bench.kernels import reference
from sparse_bench.kernels.backend import Kernels

PACKAGE = Path(sparse_bench.__file__).parent
# The device-neutral modules: they may import ``sparse_bench.kernels`` and the names it exports, nothing
# below it
REFERENCE_MODULES = sorted([*PACKAGE.glob("routing/*.py"), *PACKAGE.glob("blocks/*.py")]
                           + [PACKAGE / f"{name}.py" for name in ("hashing", "experts", "dispatch", "moe")])


def test_backend_follows_the_device_type():
    assert kernels.backend_for(torch.ones(2)).name == "cpu"
    assert kernels.backend_for(torch.ones(2, device="meta")).name == "reference"  # no backend of its own
    with device_path_on_cpu():  # CPU tensors run what CUDA runs
        assert kernels.backend_for(torch.ones(2)).name == "cuda"


def test_backend_of_a_cuda_tensor_is_chosen_without_querying_a_gpu(monkeypatch):
    with FakeTensorMode():  # a CUDA tensor on a machine without one
        x = torch.empty(3, 4, device="cuda")

    def queried(*args, **kwargs):
        raise AssertionError("the backend switch queried the GPU")

    for name in ("is_available", "device_count", "current_device", "get_device_properties", "init"):
        monkeypatch.setattr(torch.cuda, name, queried)
    assert kernels.backend_for(x).name == "cuda"


def test_use_backend_forces_a_backend_within_its_block_only():
    x = torch.ones(2, 3)
    with kernels.use_backend("reference") as forced:
        assert forced is kernels.BACKENDS["reference"] and kernels.backend_for(x) is forced
        with kernels.use_backend("cuda"):
            assert kernels.backend_for(x).name == "cuda"
        assert kernels.backend_for(x).name == "reference"
    assert kernels.backend_for(x).name == "cpu"
    with pytest.raises(ValueError, match="backend must be one of"):
        with kernels.use_backend("tpu"):
            pass


def test_every_backend_fills_every_op_and_names_itself():
    fields = [f.name for f in dataclasses.fields(Kernels)]
    for name, table in kernels.BACKENDS.items():
        assert table.name == name
        optional = ("dispatch_sorted", "dispatch_padded_no_grad")  # None: the device-neutral body runs
        assert all(callable(getattr(table, f)) for f in fields if f not in ("name", "products", *optional))
        assert all(getattr(table, f) is None or callable(getattr(table, f)) for f in optional)
    # the CPU backend's own kernels, the reference's elsewhere
    cpu = kernels.BACKENDS["cpu"]
    own = {f for f in fields if getattr(cpu, f) is not getattr(reference.KERNELS, f)}
    assert own == {"name", "products", "linear", "expert_softmax", "experts_grouped", "experts_batched",
                   "dispatch_sorted", "dispatch_padded_no_grad", "prepacks"}


def forbidden_imports(source: str, module: str) -> list[str]:
    """Imports in ``source`` (of the dotted ``module``) that bypass the switch: any module below
    ``sparse_bench.kernels``, a name ``sparse_bench.kernels`` does not export, or torch's oneDNN ops."""
    package = module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            names = [f"{base}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Attribute):  # torch.ops.mkldnn, torch.backends.mkldnn
            names = [ast.unparse(node)] if node.attr == "mkldnn" else []
        else:
            continue
        for name in names:
            below = name.startswith("sparse_bench.kernels.")
            if below and name.split(".")[2] not in kernels.__all__ or "mkldnn" in name.split("."):
                found.append(name)
    return found


def test_forbidden_imports_are_found():
    """Negative control of the test below: every way around the switch is reported, the switch itself not."""
    planted = ("import torch\nfrom ..kernels.cpu import onednn\nfrom ..kernels import cpu, linear\n"
               "import sparse_bench.kernels.reference\nfrom ..kernels.swiglu import SwiGLUSlab\n"
               "op = torch.ops.mkldnn._linear_pointwise\nfrom torch.ops import mkldnn\n"
               "from .. import kernels\n")
    assert sorted(forbidden_imports(planted, "sparse_bench.routing.base")) == [
        "sparse_bench.kernels.cpu", "sparse_bench.kernels.cpu.onednn", "sparse_bench.kernels.reference",
        "sparse_bench.kernels.swiglu.SwiGLUSlab", "torch.ops.mkldnn", "torch.ops.mkldnn"]
    allowed = "from . import kernels\nfrom .kernels import backend_for, linear\n"
    assert forbidden_imports(allowed, "sparse_bench.dispatch") == []


@pytest.mark.parametrize("path", REFERENCE_MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_reference_modules_reach_kernels_only_through_the_switch(path):
    module = "sparse_bench." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
    assert forbidden_imports(path.read_text(), module) == []
