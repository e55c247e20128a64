"""Access control: roles grant actions on resources; everything else is denied.

One function decides (:func:`decide`), so every endpoint that asks gets the
same answer for the same question and the rules are tested in one place.

A *grant* names an action (``read``, ``write``, ``admin``, or ``*``) and a
resource pattern: a path of ``/``-separated segments where ``*`` matches one
segment and a final ``**`` matches any rest (``node/*/peers``,
``konomi/**``). A *role* is a named set of grants; an identity holds roles.
An identity is allowed an action on a resource when one of its roles has a
grant that matches both, and no role of it has a *deny* that matches both
(a deny wins: an operator role can be narrowed without rewriting it).
Unknown roles grant nothing. The answer says which rule decided, for logs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from focusflow.core.errors import InvalidParameterError

ACTIONS = ("read", "write", "admin")
#: Longest resource path and most segments a pattern or a resource may have.
MAX_PATH = 512
MAX_SEGMENTS = 32


def _segments(path: str, what: str) -> tuple[str, ...]:
    if not isinstance(path, str) or not 0 < len(path) <= MAX_PATH:
        raise InvalidParameterError(f"a {what} is a path of 1..{MAX_PATH} characters")
    parts = tuple(path.strip("/").split("/"))
    if len(parts) > MAX_SEGMENTS or any(p == "" for p in parts):
        raise InvalidParameterError(
            f"a {what} has 1..{MAX_SEGMENTS} non-empty '/'-separated segments: {path!r}"
        )
    return parts


@dataclass(frozen=True)
class Grant:
    """``action`` on resources matching ``pattern``; ``deny`` turns it into a refusal."""

    action: str
    pattern: str
    deny: bool = False
    _parts: tuple[str, ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.action != "*" and self.action not in ACTIONS:
            raise InvalidParameterError(
                f"action must be one of {', '.join(ACTIONS)} or '*', got {self.action!r}"
            )
        parts = _segments(self.pattern, "resource pattern")
        if "**" in parts[:-1]:
            raise InvalidParameterError(f"'**' may only end a pattern: {self.pattern!r}")
        object.__setattr__(self, "_parts", parts)

    def matches(self, action: str, resource: tuple[str, ...]) -> bool:
        if self.action not in ("*", action):
            return False
        parts = self._parts
        if parts and parts[-1] == "**":
            head = parts[:-1]
            return len(resource) >= len(head) and _match(head, resource[: len(head)])
        return len(parts) == len(resource) and _match(parts, resource)


def _match(pattern: tuple[str, ...], resource: tuple[str, ...]) -> bool:
    return all(p in ("*", r) for p, r in zip(pattern, resource, strict=True))


@dataclass(frozen=True)
class Decision:
    allowed: bool
    #: What decided: ``"role R grants A on P"``, ``"role R denies A on P"`` or
    #: ``"no grant"`` (deny by default).
    reason: str


class Policy:
    """Roles and their grants."""

    def __init__(self, roles: Mapping[str, Iterable[Grant]]) -> None:
        self.roles: dict[str, tuple[Grant, ...]] = {
            name: tuple(grants) for name, grants in roles.items()
        }

    def decide(self, roles: Iterable[str], action: str, resource: str) -> Decision:
        return decide(self, roles, action, resource)


def decide(policy: Policy, roles: Iterable[str], action: str, resource: str) -> Decision:
    """Whether an identity holding ``roles`` may do ``action`` on ``resource``:
    a matching deny refuses, else a matching grant allows, else it is refused."""
    if action not in ACTIONS:
        raise InvalidParameterError(f"action must be one of {', '.join(ACTIONS)}, got {action!r}")
    parts = _segments(resource, "resource")
    allowed: Decision | None = None
    for role in sorted(set(roles)):
        for grant in policy.roles.get(role, ()):
            if not grant.matches(action, parts):
                continue
            if grant.deny:
                return Decision(False, f"role {role} denies {action} on {grant.pattern}")
            if allowed is None:
                allowed = Decision(True, f"role {role} grants {action} on {grant.pattern}")
    return allowed if allowed is not None else Decision(False, "no grant")
