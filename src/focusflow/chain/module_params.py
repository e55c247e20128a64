"""A module's own parameters: the base of their dataclasses, and the sections a chain knows.

The kernel's parameters are :class:`~focusflow.chain.params.ChainParams`' fields.
Every other parameter belongs to one module, which declares it in a frozen
dataclass of its own (``modules.wasm.WasmParams``, ``modules.dex.DexParams``
...) derived from :class:`ModuleParams` and named by its section
(:attr:`ModuleParams.SECTION`); a module reads it from the block's parameters
with ``WasmParams.of(ctx.params)``. The kernel knows none of these names: it
keeps each section as the module built it, and asks the sections for their
names, checks and hashed form.

The genesis still spells every parameter flat (``"params": {"wasm_max_gas":
..., "dex_fee_bps": ...}``): a section's fields are named as the genesis names
them, so geneses written before sections existed load unchanged, and the
genesis hash (the flat dict of every parameter) stays what it was.

A module's section is declared with :func:`param_section`, which the modules
do as they are imported (``focusflow.modules``); :func:`sections` lists those
declared. A chain's parameters are made after its modules are imported (the
node's wiring imports them), so a genesis names only parameters some section
declared; in a process that imported no module a module's parameter is an
unknown one, refused, never silently dropped (the light client, which runs no
module, reads only the kernel's part of a genesis: ``light.client``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, asdict, fields
from typing import TYPE_CHECKING, Any, ClassVar, Self, TypeVar

from focusflow.chain.errors import GenesisError

if TYPE_CHECKING:
    from focusflow.chain.params import ChainParams

#: The unit of parameters in basis points: 10_000 is the whole.
BASIS_POINTS = 10_000


class ModuleParams:
    """Base of a module's parameters: a frozen dataclass whose fields are the
    parameters' genesis names, with their defaults.

    Every field is a non-negative integer unless the subclass's
    :meth:`check_value` says otherwise; :meth:`check` holds the rules between
    fields."""

    #: The section's name, the module's (``"wasm"``, ``"dex"``).
    SECTION: ClassVar[str]
    #: Fields left out of the genesis hash at their default: parameters added
    #: after chains were started, so those chains' genesis hash stays what it was.
    OMITTED_AT_DEFAULT: ClassVar[frozenset[str]] = frozenset()
    #: Fields the validators may change by vote (``chain.governed``).
    GOVERNED: ClassVar[frozenset[str]] = frozenset()
    #: Fields that must be at least 1.
    POSITIVE: ClassVar[frozenset[str]] = frozenset()
    #: Fields in basis points: at most :data:`BASIS_POINTS`.
    IN_BASIS_POINTS: ClassVar[frozenset[str]] = frozenset()

    def __post_init__(self) -> None:
        self.check()

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(spec.name for spec in fields(cls))  # type: ignore[arg-type]

    @classmethod
    def of(cls, params: ChainParams) -> Self:
        """This module's parameters in ``params`` (a chain's; the defaults if they
        were made before the module was imported)."""
        found = params.sections.get(cls.SECTION)
        if found is None:
            return cls()
        if not isinstance(found, cls):
            raise TypeError(f"section {cls.SECTION!r} holds {type(found).__name__}")
        return found

    @classmethod
    def check_value(cls, name: str, value: Any) -> None:
        """One parameter as the genesis gives it: a non-negative integer."""
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise GenesisError(f"params.{name} must be a non-negative integer")

    @classmethod
    def from_raw(cls, raw: Mapping[str, Any]) -> Self:
        """The section from the genesis's values of its fields (the others at their
        default); GenesisError names the first parameter that is wrong."""
        for name, value in raw.items():
            cls.check_value(name, value)
        for name in sorted(cls.POSITIVE):
            if raw.get(name, 1) < 1:
                raise GenesisError(f"params.{name} must be at least 1")
        for name in sorted(cls.IN_BASIS_POINTS):
            if raw.get(name, 0) > BASIS_POINTS:
                raise GenesisError(f"params.{name} is in basis points: at most {BASIS_POINTS}")
        return cls(**raw)

    def check(self) -> None:
        """Rules between this section's fields; GenesisError names the broken one."""

    def to_dict(self) -> dict[str, Any]:
        """Every field, but those of OMITTED_AT_DEFAULT at their default: the
        section's part of the hashed parameters."""
        raw = asdict(self)  # type: ignore[call-overload]
        for spec in fields(self):  # type: ignore[arg-type]
            if spec.name not in self.OMITTED_AT_DEFAULT:
                continue
            factory = spec.default_factory
            default = spec.default if factory is MISSING else factory()
            if raw[spec.name] == default:
                del raw[spec.name]
        return dict(raw)

    def flat(self) -> dict[str, Any]:
        """Every field by its genesis name, defaults included."""
        return dict(asdict(self))  # type: ignore[call-overload]


S = TypeVar("S", bound=type[ModuleParams])

_SECTIONS: dict[str, type[ModuleParams]] = {}


def param_section(kind: S) -> S:
    """Declare a module's parameters (a class decorator): their names join the
    parameters a genesis may name. A name two sections claim is refused."""
    claimed = {name: other for other in _SECTIONS.values() for name in other.names()}
    for name in kind.names():
        other = claimed.get(name)
        if other is not None and other.SECTION != kind.SECTION:
            raise TypeError(f"parameter {name} is both {other.SECTION}'s and {kind.SECTION}'s")
    _SECTIONS[kind.SECTION] = kind
    return kind


def sections() -> tuple[type[ModuleParams], ...]:
    """The declared sections, in the order they were declared."""
    return tuple(_SECTIONS.values())
