"""The base of preflight's own exceptions.

A failed check is a result (a report entry with a code), never an exception; these
are for what stops preflight from doing what was asked. Each is also importable
from the package that raises it::

    PreflightError
     ├── InputError        preflight.reader: the input cannot be read at all
     ├── AccountRejected   preflight.smartlead: the account failed a check (also a ValueError)
     ├── JournalError      preflight.smartlead: the submit journal cannot be used
     │    └── JournalBusy  another run holds the journal's lock
     ├── Unauthorized      preflight.smartlead: the API key was refused (401)
     ├── LookupFailed      preflight.smartlead: the key check or a look-up failed
     └── AutoconfigError   preflight.discover: an unusable autoconfig document
                           (also a ValueError)

``except preflight.PreflightError`` catches all of them, and nothing else:
programming errors (``TypeError``, ``RuntimeError`` from a sync entry point called
inside an event loop, ``ValueError`` for an out-of-range argument) are not among them.
"""

from __future__ import annotations

__all__ = ["PreflightError"]


class PreflightError(Exception):
    """The base of every exception preflight raises on purpose."""
