"""A tiny name -> factory registry, used only at the string boundary (configs, CLI)."""

from __future__ import annotations

import difflib
import fnmatch
import inspect
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from .errors import ConfigError, UnknownNameError

T = TypeVar("T")

__all__ = ["Registry", "check_kwargs"]


def check_kwargs(fn: Callable[..., Any], kwargs: dict[str, Any], *, what: str) -> None:
    """Raise ConfigError if ``kwargs`` does not fit ``fn``'s signature (before anything is built).

    Unknown keywords get close-match suggestions; missing required keywords are named.
    """
    sig = inspect.signature(fn)
    params = sig.parameters
    accepts_var_kw = any(p.kind is p.VAR_KEYWORD for p in params.values())
    named = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if not accepts_var_kw:
        for key in kwargs:
            if key not in named:
                close = difflib.get_close_matches(key, named, n=3)
                hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
                raise ConfigError(f"{what} got an unknown argument {key!r}.{hint} Valid arguments: {', '.join(named)}.")
    missing = [
        n
        for n, p in params.items()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.default is p.empty and n not in kwargs
    ]
    if missing:
        raise ConfigError(f"{what} is missing required argument(s): {', '.join(missing)}.")


class Registry(Generic[T]):
    """Maps names to factories. Duplicate names fail at import; unknown names fail with suggestions."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Callable[..., T]] = {}

    def register(self, fn: Callable[..., T] | None = None, *, name: str | None = None):
        """Decorator: ``@REG.register`` or ``@REG.register(name="x")``."""

        def wrap(f: Callable[..., T]) -> Callable[..., T]:
            key = name or f.__name__
            if key in self._entries:
                raise ValueError(f"{self.kind} {key!r} is registered twice")
            self._entries[key] = f
            return f

        return wrap(fn) if fn is not None else wrap

    def get(self, name: str) -> Callable[..., T]:
        if name not in self._entries:
            close = difflib.get_close_matches(name, list(self._entries), n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}.{hint} "
                f"Run `freqdense list` to see all {len(self._entries)} {self.kind}s."
            )
        return self._entries[name]

    def create(self, name: str, **kwargs: Any) -> T:
        fn = self.get(name)
        check_kwargs(fn, kwargs, what=f"{self.kind} {name!r}")
        return fn(**kwargs)

    def names(self, pattern: str = "*") -> list[str]:
        return sorted(n for n in self._entries if fnmatch.fnmatch(n, pattern))

    def __contains__(self, name: object) -> bool:
        return name in self._entries
