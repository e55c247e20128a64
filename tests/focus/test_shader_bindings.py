"""The Python side and the shader sources name the same bindings and slots.

The WGSL modules and the CUDA C are package data (``kernels/``); ``wgsl.py``
names each module's bindings and uniform fields once. These tests parse the
sources (no GPU needed) and fail where the two sides disagree: a binding
renumbered or renamed on one side only, a uniform field moved, an entry point
bound to a variable its module does not declare, a constant changed in the
source but not in Python.
"""

import inspect
import re

import pytest

from focusflow.focus.backends import cuda, wgsl
from focusflow.focus.backends.base import kernel_source

_BINDING = re.compile(r"@group\((\d+)\)\s*@binding\((\d+)\)\s*var(?:<[^>]*>)?\s+(\w+)\s*:")
_ENTRY = re.compile(r"@compute[^\n]*\n\s*fn\s+(\w+)\s*\(")


def _declared(source: str) -> dict[str, int]:
    """``name -> binding`` of every module-scope resource of a WGSL source."""
    found = {}
    for group, binding, name in _BINDING.findall(source):
        assert group == "0", f"{name} is in group {group}; the backend binds group 0 only"
        assert name not in found, f"{name} declared twice"
        found[name] = int(binding)
    return found


def _struct_fields(source: str, struct: str) -> list[str]:
    body = re.search(rf"struct\s+{struct}\s*\{{(.*?)\}}", source, re.S)
    assert body is not None, f"no struct {struct}"
    return re.findall(r"^\s*(\w+)\s*:", body.group(1), re.M)


@pytest.mark.parametrize("module", sorted(wgsl.MODULES))
def test_binding_enum_matches_the_source(module):
    filename, bindings, _, _ = wgsl.MODULES[module]
    declared = _declared(kernel_source(filename))
    named = {member.name.lower(): int(member) for member in bindings}
    assert declared == named


@pytest.mark.parametrize("module", sorted(wgsl.MODULES))
def test_uniform_slots_match_the_struct(module):
    filename, _, struct, slots = wgsl.MODULES[module]
    fields = _struct_fields(kernel_source(filename), struct)
    assert fields == [member.name.lower() for member in sorted(slots)]
    # every field is one 32-bit word (u32 or f32), so its index is its slot
    body = re.search(rf"struct\s+{struct}\s*\{{(.*?)\}}", kernel_source(filename), re.S)
    assert set(re.findall(r":\s*(\w+)\s*,", body.group(1))) <= {"u32", "f32"}


@pytest.mark.parametrize("module", sorted(wgsl.MODULES))
def test_entry_points_and_their_bindings(module):
    """Each module's entry points are those the backend compiles, and each is
    bound only to resources its module declares."""
    bindings = wgsl.MODULES[module][1]
    entries = set(
        _ENTRY.findall(wgsl.shader(module) if module != "vector" else wgsl.vector_shader(2))
    )
    assert entries == set(wgsl.KERNELS[module])
    for name in wgsl.KERNELS[module]:
        assert all(isinstance(b, bindings) for b in wgsl.BINDINGS[name]), name


def test_tri_coefficients_start_where_python_writes_them():
    match = re.search(r"const\s+COEF0\s*:\s*u32\s*=\s*(\d+)u;", kernel_source("tri.wgsl"))
    assert match is not None and int(match.group(1)) == wgsl.TriScalar.COEF0


def test_anderson_window_of_the_shader_and_the_cuda_kernels():
    """The WGSL window placeholders are filled, and the CUDA C's largest window
    is the one the cuda backend sizes its sums for."""
    vector = wgsl.vector_shader(wgsl.MAX_ANDERSON)
    assert "AA_M_VALUE" not in vector and "AA_VALUES_N" not in vector
    assert f"const AA_M: u32 = {wgsl.MAX_ANDERSON}u;" in vector
    source = kernel_source("focus.cu")
    match = re.search(r"#define\s+AA_MAX\s+(\d+)", source)
    assert match is not None
    assert int(match.group(1)) == cuda._AndersonKernels.MAX == wgsl.MAX_ANDERSON


def test_cuda_kernels_cuda_py_asks_for():
    """The value type and block size are the placeholders cuda.py replaces, and
    every kernel it looks up by name is defined in the CUDA C (the import
    needs no GPU)."""
    source = kernel_source("focus.cu")
    for token in ("VAL2", "VAL", "BLOCK"):
        assert re.search(rf"\b{token}\b", source), token
    defined = set(re.findall(r'extern "C" __global__\s+void\s+(\w+)', source))
    wanted = set(re.findall(r'get_function\("(\w+)"\)', inspect.getsource(cuda)))
    assert len(wanted) >= 15 and wanted <= defined
