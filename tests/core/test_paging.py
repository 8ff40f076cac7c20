"""Read results: pages bounded in items and in bytes, and paging that always moves on."""

from __future__ import annotations

from agent.paging import ENVELOPE_BYTES, READ_RESULT_BYTES, page_of, result_budget
from agent.payloads import to_json


def test_a_page_stops_before_its_bytes_run_out_and_says_where_the_next_starts() -> None:
    items = [{"n": i, "pad": "x" * 1000} for i in range(10)]
    first = page_of(items, 0, 50, 3500)
    assert [i["n"] for i in first["items"]] == [0, 1, 2] and first["next"] == 3 and first["total"] == 10
    assert len(to_json(first["items"])) <= 3500
    seen, page = [], 0
    while page is not None:
        got = page_of(items, page, 4, 3500)
        seen += [i["n"] for i in got["items"]]
        page = got["next"]
    assert seen == list(range(10))


def test_an_item_too_large_alone_is_named_not_sent_and_paging_goes_on() -> None:
    items = [{"n": 0}, {"pad": "x" * 5000}, {"n": 2}]
    got = page_of(items, 0, 10, 1000)
    assert got["items"][1] == {"omitted_bytes": len(to_json(items[1]))} and got["next"] is None


def test_the_budget_is_under_the_brokers_packet_limit() -> None:
    assert result_budget(None) == READ_RESULT_BYTES - ENVELOPE_BYTES
    assert result_budget(20_000) == 20_000 - ENVELOPE_BYTES
