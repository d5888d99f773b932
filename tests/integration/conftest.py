"""Integration tests against real servers on loopback (see fixtures/stack.py).

``PREFLIGHT_TEST_TARGET=local`` (default) starts Dovecot, Postfix (as root),
aiosmtpd and a DNS server once for the session; ``greenmail`` uses a GreenMail
container from docker/compose.yml instead of Dovecot and Postfix.

A server the tests need but cannot have is a skip on a developer's machine and
a failure under ``CI``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

# fixtures/ is a directory at the top of the repository, not an installed
# package, and the pytest entry point does not put the working directory on
# sys.path. (Redundant once the pytest config sets pythonpath = ["."].)
_REPO = str(Path(__file__).resolve().parents[2])
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)

from fixtures import (  # noqa: E402 - needs the sys.path entry above
    MissingSystemDependencyError,
    ServerUnavailableError,
    Stack,
    selected_target,
    start_stack,
)
from fixtures.pytest_support import unavailable  # noqa: E402

# marker -> (what it means, the targets on which tests carrying it are skipped)
MARKERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "needs_starttls": ("uses STARTTLS, which GreenMail does not offer", ("greenmail",)),
    "needs_local_ca": (
        "verifies certificates against the fixtures' CA (GreenMail's is self-signed)",
        ("greenmail",),
    ),
    "needs_local_servers": (
        "starts the fixtures' own Dovecot/Postfix (not used with GreenMail)",
        ("greenmail",),
    ),
}


def pytest_configure(config: pytest.Config) -> None:
    try:
        selected_target()
    except ValueError as exc:  # a typo in PREFLIGHT_TEST_TARGET: say so once
        raise pytest.UsageError(str(exc)) from exc
    for name, (meaning, _) in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: the test {meaning}")


def pytest_runtest_setup(item: pytest.Item) -> None:
    target = selected_target()
    for name, (meaning, skipped_on) in MARKERS.items():
        if target in skipped_on and item.get_closest_marker(name) is not None:
            pytest.skip(f"the test {meaning} (PREFLIGHT_TEST_TARGET={target})")


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The running servers, shared by the whole session; all stopped at the end."""
    workdir = tmp_path_factory.mktemp("stack")
    with ExitStack() as cleanup:
        try:
            running = cleanup.enter_context(start_stack(workdir))
        except ServerUnavailableError as exc:
            unavailable(str(exc))
        except MissingSystemDependencyError as exc:
            # As root the stack could run the server: not having it is a
            # setup error, never a skip.
            pytest.fail(str(exc), pytrace=False)
        yield running
    # Leaving the ExitStack stopped every server; stopping raises if a Dovecot
    # or Postfix process survived, which turns this teardown into an error.


@pytest.fixture(autouse=True)
def _collect_garbage() -> Iterator[None]:
    """Collect after each test, so that a leaked socket's ResourceWarning (an error
    here) is raised by the test that leaked it, not by whichever test runs later."""
    import gc

    yield
    gc.collect()
