"""The checks, one module each, that :mod:`preflight.runner` schedules for an account.

- :mod:`~preflight.checks.mx`: the address domain's MX records;
- :mod:`~preflight.checks.smtp`, :mod:`~preflight.checks.imap`: one real login each;
- :mod:`~preflight.checks.roundtrip`: send a message to the account and find it;
- :mod:`~preflight.checks.domain`: SPF, DMARC and DKIM of the sending domain;
- :mod:`~preflight.checks.tracking`: the payload's custom tracking domain (DNS,
  CNAME, its HTTPS certificate).

The SMTP and IMAP probes share :mod:`._probe` (connect, TLS, log in, classify),
:mod:`._replies` and :mod:`._hints` (a refusal to a code and a hint), and
:mod:`._imap_client` (the one module that extends aioimaplib). Below them, at the
package's top level, are what the checks share with ``discover`` and ``smartlead``:
``preflight._net``, ``preflight._tls``, ``preflight._resolver``. Nothing here imports
the runner, discover, smartlead or the CLI; the package imports nothing eagerly.
"""
