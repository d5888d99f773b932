"""A value that never shows itself.

Passwords, OAuth tokens and API keys are wrapped in :class:`Secret` as soon as they
are read. ``repr()``, ``str()``, ``format()`` and pickling all show a mask; the
clear value is reachable only through :meth:`Secret.reveal`, which the code that
sends the credential calls, and nothing else should.
"""

from __future__ import annotations

from typing import Any, Generic, NoReturn, TypeVar

T = TypeVar("T")

MASK = "********"


class Secret(Generic[T]):
    """Hold a secret value; show only a mask."""

    __slots__ = ("_value",)

    def __init__(self, value: T) -> None:
        self._value = value

    def reveal(self) -> T:
        """Return the clear value. Call it only where the value is sent."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    def __str__(self) -> str:
        return MASK

    def __format__(self, spec: str) -> str:
        return MASK

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Secret):
            return bool(self._value == other._value)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # equal secrets need not hash alike: tokens are dicts

    def __reduce__(self) -> NoReturn:
        # A secret must not travel through pickle into a log, cache or subprocess.
        raise TypeError("a Secret cannot be pickled")

    def __deepcopy__(self, memo: dict[int, Any]) -> Secret[T]:
        return self

    def __copy__(self) -> Secret[T]:
        return self
