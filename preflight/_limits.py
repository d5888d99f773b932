"""How many accounts of one server host are checked at once: a bound that adapts.

Providers limit simultaneous logins per client address (Gmail's ``454 4.7.0 Too many
login attempts``, Microsoft's ``432 4.3.2 ... thread limit exceeded``, IMAP's
``[LIMIT]``). :class:`HostLimit` starts at ``--per-host`` and follows TCP's rule
(AIMD): a throttling reply halves the bound, every check that was not throttled
grows it by ``1/bound`` (about one per round of checks), never past the ceiling.

Sessions that were already open when the bound was halved report throttling about
the old bound (``epoch``: the number of halvings when a session started): each of
those lowers it by one, not by half again.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator

__all__ = ["HostLimit"]


class HostLimit:
    """An adaptive bound on simultaneous checks of one host (first come, first served)."""

    def __init__(self, ceiling: int) -> None:
        if ceiling < 1:
            raise ValueError("the bound must be at least 1")
        self.ceiling = ceiling
        self.limit = float(ceiling)
        self.active = 0
        #: Decreases so far; a session is told the epoch it started in.
        self.epoch = 0
        #: The bound right after the last decrease: what the host took then.
        self.safe = float(ceiling)
        #: Second tries waiting or running: while there are any, the bound is
        #: ``safe``, so that a second try is not the one that finds the limit again.
        self.careful = 0
        self._waiting: collections.deque[asyncio.Future[None]] = collections.deque()

    @property
    def bound(self) -> int:
        """How many may be checked at once now."""
        limit = min(self.limit, self.safe) if self.careful else self.limit
        return max(1, int(limit))

    async def acquire(self) -> int:
        """Wait for a place; the epoch it was granted in."""
        if self.active < self.bound and not self._waiting:
            self.active += 1
            return self.epoch
        waiter = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # granted as it was cancelled: pass the place on
            else:
                with contextlib.suppress(ValueError):
                    self._waiting.remove(waiter)
            raise
        return self.epoch

    def release(self) -> None:
        self.active -= 1
        self._wake()

    def _wake(self) -> None:
        # One wake-up per free place: the others waiting cost nothing meanwhile.
        while self._waiting and self.active < self.bound:
            waiter = self._waiting.popleft()
            if not waiter.done():
                self.active += 1
                waiter.set_result(None)

    def throttled(self, epoch: int) -> None:
        """A session started in ``epoch`` was throttled.

        The first throttling reply of an epoch halves the bound (a new epoch). Each
        later one from a session of an older epoch lowers it by one more: of the
        sessions that were open together, the server took only those it did not
        refuse, so the bound comes down to about that many, once the burst is over.
        """
        if epoch == self.epoch:
            self.limit = max(1.0, self.limit / 2)
            self.epoch += 1
        else:
            self.limit = max(1.0, self.limit - 1)
        self.safe = self.limit

    def succeeded(self) -> None:
        """A session ended without throttling: grow the bound a little."""
        if self.limit < self.ceiling:
            self.limit = min(float(self.ceiling), self.limit + 1 / self.limit)
            self._wake()

    @contextlib.asynccontextmanager
    async def held(self, *, careful: bool = False) -> AsyncIterator[int]:
        """A place for the block, released after it; yields the epoch. ``careful``: a
        second try, which holds everyone to the ``safe`` bound until it is done."""
        if careful:
            self.careful += 1
        try:
            epoch = await self.acquire()
            try:
                yield epoch
            finally:
                self.release()
        finally:
            if careful:
                self.careful -= 1
                self._wake()

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *exc: object) -> None:
        self.release()
