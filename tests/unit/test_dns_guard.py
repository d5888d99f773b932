"""The CI's DNS guard (fixtures/dns_guard.py): it names each question it is asked and
answers it REFUSED, so that a client fails at once and the run can list what leaked."""

from __future__ import annotations

from dnslib import QTYPE, RCODE, DNSRecord  # type: ignore[import-untyped]
from hypothesis import given
from hypothesis import strategies as st

from fixtures.dns_guard import _question, _refused


def test_a_question_is_named_and_refused() -> None:
    query = DNSRecord.question("update.example.com", "AAAA")
    assert _question(query.pack()) == "update.example.com (type 28)"
    answer = DNSRecord.parse(_refused(query.pack()))
    assert answer.header.id == query.header.id
    assert answer.header.qr == 1
    assert answer.header.rcode == RCODE.REFUSED
    assert (str(answer.q.qname), answer.q.qtype) == ("update.example.com.", QTYPE.AAAA)
    assert answer.rr == []


@given(st.binary(max_size=64))
def test_any_bytes_are_named_without_an_exception(data: bytes) -> None:
    assert isinstance(_question(data), str)
    answer = _refused(data)
    assert answer == b"" or len(answer) == len(data)
