"""One small net per interaction rule, and the layout and dispatch table.

The expected results and counts of the small nets marked "HVM2" were
measured with HVM2's reference interpreter (``hvm run``); the others follow
from the rule's definition (a VOID, ERAS, ANNI or COMM is one interaction, and
so is each CALL and each OPER/SWIT step).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from focusflow.rewrite import ports
from focusflow.rewrite.cpu import normalize
from focusflow.rewrite.errors import HvmOutOfMemoryError, HvmReadbackError, HvmUnsafeCloneError
from focusflow.rewrite.parse import load_book
from focusflow.rewrite.run import run_text
from focusflow.rewrite.show import normalize_names, readback


def _run(text: str) -> tuple[str, int]:
    out = run_text(text, nodes=1 << 12, vars_=1 << 12)
    return normalize_names(out.result), out.interactions


def test_port_and_pair_layout() -> None:
    p = ports.port(ports.CON, 5)
    assert p == (5 << 3) | 4 and p & 7 == ports.CON and p >> 3 == 5
    assert int(ports.new_port(ports.NUM, 0x1FFFFFFF)) == 0xFFFFFFFB
    pr = ports.pair(0x11, 0x22)
    assert int(ports.get_fst(np.uint64(pr))) == 0x11 and int(ports.get_snd(np.uint64(pr))) == 0x22
    assert int(ports.new_pair(np.uint32(0x11), np.uint32(0x22))) == pr


def test_rule_table_is_symmetric_and_dispatches_by_tags() -> None:
    table = ports.RULES
    assert table.shape == (8, 8) and (table == table.T).all()
    assert (table[ports.VAR] == ports.LINK).all()
    assert table[ports.REF, ports.DUP] == ports.CALL
    assert table[ports.NUM, ports.OPR] == ports.OPER
    assert table[ports.SWI, ports.NUM] == ports.SWIT
    assert table[ports.CON, ports.DUP] == ports.COMM
    assert table[ports.OPR, ports.OPR] == ports.ANNI
    assert table[ports.ERA, ports.SWI] == ports.ERAS
    assert table[ports.NUM, ports.REF] == ports.VOID
    a, b = ports.new_port(ports.NUM, 1), ports.new_port(ports.OPR, 3)
    assert ports.dispatch(a, b) == ports.dispatch(b, a) == ports.OPER
    assert [ports.RULE_NAMES[r] for r in range(8) if ports.HIGH_PRIORITY[r]] == [
        "LINK", "VOID", "ERAS", "ANNI",
    ]  # fmt: skip


def test_the_kernels_flat_tables_agree_with_the_rule_table() -> None:
    """The CPU kernel reads a pair's rule from ``PAIR_RULES`` and its priority
    from a bit of ``HIGH_PAIRS``; both must say what ``RULES`` and
    ``HIGH_PRIORITY`` say for each of the 64 tag pairs."""
    assert isinstance(ports.HIGH_PAIRS, np.int64)
    for ta in range(8):
        for tb in range(8):
            rule = ports.RULES[ta, tb]
            assert ports.PAIR_RULES[ta << 3 | tb] == rule
            high = (int(ports.HIGH_PAIRS) >> (ta << 3 | tb)) & 1
            assert high == ports.HIGH_PRIORITY[rule], (ta, tb)


@pytest.mark.parametrize(
    ("text", "result", "itrs"),
    [
        # CALL of @main only (HVM2)
        ("@main = 42", "42", 1),
        ("@main = *", "*", 1),
        ("@main = (a a)", "(x0 x0)", 1),
        # a REF reaching the root is not expanded (HVM2)
        ("@main = @foo\n@foo = (a a)", "@foo", 1),
        # CALL of a REF meeting a CON (HVM2)
        ("@main = a & @foo ~ (1 a)\n@foo = (x x)", "1", 3),
        # VOID: two nullaries vanish
        ("@main = a & * ~ 1 & (b b) ~ a", "(x0 x0)", 2),
        ("@main = a & @foo ~ 7 & (b b) ~ a\n@foo = *", "(x0 x0)", 2),
        # ERAS: an eraser and a number copied through a node
        ("@main = (a b) & * ~ (a b)", "(* *)", 2),
        ("@main = (a b) & 5 ~ {a b}", "(5 5)", 2),
        # ANNI: equal tags connect their ports
        ("@main = (a b) & (1 2) ~ (a b)", "(1 2)", 2),
        ("@main = (a b) & {1 2} ~ {a b}", "(1 2)", 2),
        # COMM: a constructor meets a duplicator; two ERAS copy the numbers
        ("@main = (a b) & (1 2) ~ {a b}", "((1 2) (1 2))", 4),
        # safe REF copied by a DUP, then two VOIDs (HVM2)
        ("@main = x & {a b} ~ @foo & (a (b x)) ~ (1 (2 3))\n@foo = (c c)", "3", 6),
        # OPER: both steps count (HVM2)
        ("@main = a & 3 ~ $([:>>1] a)", "1", 2),
        ("@main = r & 10 ~ $([-1] r)", "16777207", 2),
        ("@main = r & 10 ~ $([:-1] r)", "9", 2),
        ("@main = r & +10 ~ $([-1] r)", "-9", 2),
        ("@main = r & 3 ~ $([*0x10] r)", "48", 2),
        ("@main = r & [+] ~ $(7 r)", "[+0x0000007]", 2),
        ("@main = r & 2.5 ~ $([*] $(2 r))", "8404992", 3),
        ("@main = r & [u24] ~ $([+5] r)", "5", 2),
        ("@main = r & 0x10 ~ $([+] $(+0x10 r))", "+32", 3),
        # SWIT: successor (HVM2, for 1 and 5) and zero (ends in ANNI, ERAS, VOID)
        ("@main = a & 1 ~ ?((10 (b b)) a)", "0", 5),
        ("@main = a & 5 ~ ?((10 (b b)) a)", "4", 5),
        ("@main = a & 0 ~ ?((10 (b b)) a)", "10", 5),
    ],
)
def test_rule(text: str, result: str, itrs: int) -> None:
    assert _run(text) == (result, itrs)


def test_link_through_a_chain_of_variables() -> None:
    # wires a-b-c joined by ANNI steps, then a value arrives at one end
    assert _run("@main = x & (a x) ~ (b b) & (a c) ~ (7 c)") == ("7", 3)


def test_unsafe_reference_meeting_a_duplicator_is_refused() -> None:
    text = "@main = (a b) & {a b} ~ @dup\n@dup = {x x}"
    with pytest.raises(HvmUnsafeCloneError) as info:
        run_text(text, nodes=64, vars_=64)
    assert info.value.code == "hvm_unsafe_clone"


def test_a_tiny_heap_runs_out_of_memory_cleanly() -> None:
    book = load_book((Path(__file__).parent / "programs" / "sum_rec.hvm").read_text())
    with pytest.raises(HvmOutOfMemoryError, match="node slots") as info:
        normalize(book, nodes=32, vars_=1 << 12)
    assert info.value.code == "hvm_out_of_memory"
    with pytest.raises(HvmOutOfMemoryError, match="variable slots"):
        normalize(book, nodes=1 << 12, vars_=16)


def test_normal_form_of_an_open_net_prints_free_variables() -> None:
    result, itrs = _run("@main = (a (b (a b)))")
    assert result == "(x0 (x1 (x0 x1)))" and itrs == 1


def test_readback_of_a_circle_is_a_precise_error() -> None:
    # node 1 is (node 1, *): the root reaches it again through itself
    node = np.zeros(4, dtype=np.uint64)
    node[1] = ports.pair(ports.port(ports.CON, 1), ports.port(ports.ERA, 0))
    subst = np.zeros(4, dtype=np.uint32)
    subst[3] = ports.port(ports.CON, 1)
    with pytest.raises(HvmReadbackError, match="node 1 is reached twice"):
        readback(node, subst, ports.port(ports.VAR, 3), ["main"])
    subst[1], subst[2] = ports.port(ports.VAR, 2), ports.port(ports.VAR, 1)
    with pytest.raises(HvmReadbackError, match="circle of linked variables"):
        readback(node, subst, ports.port(ports.VAR, 1), ["main"])
