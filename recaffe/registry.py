"""Registries mapping Caffe's type strings to the classes and functions that implement them."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class UnknownTypeError(KeyError):
    """A prototxt names a type no registry entry implements."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class Registry(Generic[T]):
    """Maps Caffe type strings ("InnerProduct", "SGD", "xavier", "step") to implementations.

    Registration happens at the definition site with ``@REGISTRY.register("Name")``; a class
    registered this way also gets ``cls.type = "Name"`` so the type string has one source.
    """

    def __init__(self, kind: str) -> None:
        self._kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(entry: T) -> T:
            if name in self._entries:
                raise KeyError(f"{self._kind} type {name!r} already registered")
            self._entries[name] = entry
            if isinstance(entry, type):
                entry.type = name  # type: ignore[attr-defined]
            return entry

        return add

    def get(self, name: str) -> T:
        if name not in self._entries:
            guess = closest(name, self.names())
            hint = f"; did you mean {guess!r}?" if guess else ""
            raise UnknownTypeError(
                f"Unknown {self._kind} type: {name!r}{hint} (known types: {', '.join(self.names())})"
            )
        return self._entries[name]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def names(self) -> list[str]:
        return sorted(self._entries)


def closest(name: str, known: Iterable[str]) -> str | None:
    """The known name ``name`` most likely misspells (any case), or None when none is close."""
    known = list(known)
    by_lower = {k.lower(): k for k in known}
    if name.lower() in by_lower:
        return by_lower[name.lower()]
    matches = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[matches[0]] if matches else None


LAYERS: Registry[Any] = Registry("layer")
SOLVERS: Registry[Any] = Registry("solver")
FILLERS: Registry[Any] = Registry("filler")
LR_POLICIES: Registry[Any] = Registry("lr_policy")
