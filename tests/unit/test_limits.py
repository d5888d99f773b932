"""The adaptive per-host bound (preflight._limits.HostLimit): its arithmetic and its queue."""

from __future__ import annotations

import asyncio

import pytest

from preflight._limits import HostLimit


def test_first_throttle_of_an_epoch_halves_later_ones_lower_by_one() -> None:
    limit = HostLimit(10)
    limit.throttled(0)
    assert (limit.bound, limit.epoch) == (5, 1)
    limit.throttled(0)  # a session from before the halving: one less, no new epoch
    assert (limit.bound, limit.epoch) == (4, 1)
    limit.throttled(1)  # a session that started under the new bound: halve again
    assert (limit.bound, limit.epoch) == (2, 2)
    for _ in range(5):
        limit.throttled(0)
    assert limit.bound == 1  # never below one


def test_growth_is_additive_and_stops_at_the_ceiling() -> None:
    limit = HostLimit(4)
    limit.throttled(0)
    assert limit.bound == 2
    limit.succeeded()
    limit.succeeded()  # 2 + 1/2 + 1/2.5: about one per round of `bound` checks
    assert limit.bound == 2
    limit.succeeded()
    assert limit.bound == 3
    for _ in range(50):
        limit.succeeded()
    assert (limit.bound, limit.limit) == (4, 4.0)


@pytest.mark.asyncio
async def test_places_are_granted_in_order_and_a_cancelled_grant_is_passed_on() -> None:
    limit = HostLimit(1)
    assert await limit.acquire() == 0
    second = asyncio.ensure_future(limit.acquire())
    third = asyncio.ensure_future(limit.acquire())
    await asyncio.sleep(0)
    assert limit.active == 1
    limit.release()  # granted to `second` ...
    second.cancel()  # ... which is cancelled before it runs: `third` gets the place
    assert await asyncio.wait_for(third, 1) == 0
    assert limit.active == 1
    with pytest.raises(asyncio.CancelledError):
        await second
    limit.release()
    assert limit.active == 0


@pytest.mark.asyncio
async def test_a_second_try_holds_everyone_to_the_safe_bound() -> None:
    limit = HostLimit(10)
    limit.throttled(0)  # safe: 5
    for _ in range(20):
        limit.succeeded()  # grown back up
    assert limit.bound > 5
    async with limit.held(careful=True):
        assert limit.bound == 5
    assert limit.bound > 5


def test_a_bound_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        HostLimit(0)
