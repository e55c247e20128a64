"""The IR parser and the book builder: HVM2's grammar, layout and errors."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from focusflow.rewrite.errors import (
    HvmMissingMainError,
    HvmSyntaxError,
    HvmUnboundRefError,
)
from focusflow.rewrite.parse import Net, build_book, load_book, parse_book, parse_net
from focusflow.rewrite.ports import CON, DUP, ERA, NUM, OPR, PAR_FLAG, REF, SWI, VAR, pair, port
from focusflow.rewrite.run import run_text
from focusflow.rewrite.show import normalize_names


def test_trees_of_every_kind() -> None:
    net = parse_net("(a {b $(c ?(d *))}) & @f ~ [+] &! x ~ 5")
    assert net.root == (
        CON,
        (VAR, "a"),
        (DUP, (VAR, "b"), (OPR, (VAR, "c"), (SWI, (VAR, "d"), (ERA,)))),
    )
    assert net.redexes[0][0] is False and net.redexes[0][1] == (REF, "f")
    assert net.redexes[1][0] is True and net.redexes[1][2][0] == NUM


def test_trivia_anywhere_and_names_with_slashes() -> None:
    a = parse_book("// lead\n\n@main=(*a)// c\n&@f~a @f = * ")
    assert a["main"].root == (CON, (ERA,), (VAR, "a"))
    assert parse_net("$ ( a b )").root == (OPR, (VAR, "a"), (VAR, "b"))
    assert parse_net("@ foo").root == (REF, "foo")
    # `//` glued to a name is part of it (`/` is a name character)
    assert parse_net("(a//c\n a)").root == (CON, (VAR, "a//c"), (VAR, "a"))
    assert normalize_names(run_text("@main = (a//c\n a)").result) == "(x0 x1)"


def test_a_repeated_definition_keeps_the_last() -> None:
    assert parse_book("@main = 1\n@main = 2")["main"].root == (NUM, (2 << 5) | 1)


def test_literals_as_hvm2_reads_and_prints_them() -> None:
    for text, printed in [
        ("1e5", "1"), ("0b101", "5"), ("-0", "+0"), ("[* 2]", "[*0x0000002]"),
        ("[*-1]", "[*0x0FFFFFF]"), ("[/1.2]", "[/0x03F999A]"), ("+0x10", "+16"),
        ("1.5e3", "1500.0"), ("-0.0", "-0.0"), ("16777216", "0"), ("+8388608", "-8388608"),
        ("1.0000001", "1.0"), ("[:>>3]", "[:>>0x0000003]"),
    ]:  # fmt: skip
        assert run_text(f"@main = {text}").result == printed, text


def test_book_layout() -> None:
    book = load_book("@main = (a b) & @id ~ (a b)\n@id = {x x}\n@b = @main\n@a = *")
    assert book.names == ["main", "a", "b", "id"]  # main first, then by name
    assert int(book.roots[0]) == port(CON, 0)
    assert book.nodes[0 : book.node_start[1]].tolist() == [
        pair(port(VAR, 0), port(VAR, 1)),
        pair(port(VAR, 0), port(VAR, 1)),
    ]
    assert book.rbag.tolist()[0] == pair(port(REF, 3), port(CON, 1))
    assert book.vars.tolist() == [2, 0, 0, 1]
    # @id has a DUP; @main and @b refer to it (transitively): unsafe
    assert book.safe.tolist() == [0, 1, 0, 0]
    assert book.fid("id") == 3


def test_nodes_in_pre_order_and_vars_by_first_occurrence() -> None:
    book = load_book("@main = ((a b) (c a)) & (d c) ~ b")
    nodes = book.nodes.tolist()
    assert nodes[0] == pair(port(CON, 1), port(CON, 2))
    assert nodes[1] == pair(port(VAR, 0), port(VAR, 1))
    assert nodes[2] == pair(port(VAR, 2), port(VAR, 0))
    assert nodes[3] == pair(port(VAR, 3), port(VAR, 2))
    assert book.rbag.tolist() == [pair(port(CON, 3), port(VAR, 1))]
    assert book.vars.tolist() == [4]


def test_parallel_flag_only_on_a_ref_first() -> None:
    book = load_book("@main = * &! @f ~ * &! * ~ @f\n@f = *")
    first, second = book.rbag.tolist()
    assert first & 0xFFFFFFFF == port(REF, 1) | (PAR_FLAG << 3)
    assert second >> 32 == port(REF, 1)
    assert run_text("@main = a &! @f ~ (1 a)\n@f = (x x)").result == "1"


def test_arrays_are_typed_for_the_evaluator() -> None:
    book = load_book("@main = (a a)")
    assert book.nodes.dtype == np.uint64 and book.roots.dtype == np.uint32
    assert book.rbag.dtype == np.uint64 and book.rbag.shape == (0,)


@pytest.mark.parametrize(
    ("text", "line", "column", "what"),
    [
        ("@main = (a b", 1, 13, "expected ')'"),
        ("@main = (a b}", 1, 13, "expected ')'"),
        ("@main = {a b)", 1, 13, "expected '}'"),
        ("main = *", 1, 1, "expected '@'"),
        ("@main *", 1, 7, "expected '='"),
        ("@main = *\n  & a b", 2, 7, "expected '~'"),
        ("@main = *\n@f = ()", 2, 7, "expected a name"),
        ("@main = @", 1, 10, "expected a name, found end of input"),
        ("@main = $a", 1, 10, "expected '('"),
        ("@main = [+", 1, 9, "without its closing"),
        ("@main = [u2]", 1, 9, "invalid number"),
        ("@main = 1_000", 1, 10, "expected '@'"),
        ("@main = *\n\n   @ = *", 3, 6, "expected a name"),
        ("@main = 1.2.3", 1, 9, "invalid number"),
        ("@main = (a #)", 1, 12, "expected a name"),
        ("@main = a & a ~ a", 1, 17, "variable 'a' occurs a third time in @main"),
        ("@main = *\n@f = (x {y\n  x}) & y ~ (x y)", 3, 14, "'x' occurs a third time in @f"),
    ],
)
def test_malformed_programs_name_line_and_column(
    text: str, line: int, column: int, what: str
) -> None:
    with pytest.raises(HvmSyntaxError) as info:
        parse_book(text)
    assert str(info.value).startswith(f"line {line}, column {column}: ")
    assert what in str(info.value)
    assert (info.value.line, info.value.column) == (line, column)
    assert info.value.code == "hvm_syntax"


def test_a_variable_is_a_wire_of_two_ends_at_most() -> None:
    """A third end would make the evaluator overwrite a slot another wire owns
    (`@main = a & a ~ a` crashed the CPU evaluator with a segmentation fault);
    one end is a free wire, which the result shows as a variable."""
    assert normalize_names(run_text("@main = (a b)").result) == "(x0 x1)"
    with pytest.raises(HvmSyntaxError, match="'a' occurs 3 times in @main") as info:
        build_book({"main": Net((CON, (VAR, "a"), (VAR, "a")), [(False, (VAR, "a"), (ERA,))])})
    assert (info.value.line, info.value.column) == (None, None)
    assert info.value.code == "hvm_syntax"


def test_a_third_variable_end_is_an_error_not_a_crash(tmp_path) -> None:
    program = tmp_path / "three.hvm"
    program.write_text("@main = a & a ~ a\n")
    done = subprocess.run(
        [sys.executable, "-m", "focusflow", "hvm", "run", str(program)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "line 1, column 17: variable 'a' occurs a third time" in done.stderr


def test_deep_nesting_is_a_syntax_error_not_a_crash() -> None:
    with pytest.raises(HvmSyntaxError, match="nested too deeply"):
        parse_book("@main = " + "(" * 100_000)


def test_unknown_reference_and_missing_main() -> None:
    with pytest.raises(HvmUnboundRefError, match="@nope") as info:
        load_book("@main = a & @nope ~ a")
    assert info.value.code == "hvm_unbound_ref"
    with pytest.raises(HvmMissingMainError) as missing:
        build_book(parse_book("// nothing\n@f = *"))
    assert missing.value.code == "hvm_missing_main"
