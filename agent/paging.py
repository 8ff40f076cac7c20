"""Read commands answer in pages bounded in items and in bytes, so one answer always fits the COC's broker."""

from __future__ import annotations

from typing import Any

from agent.payloads import to_json

READ_RESULT_BYTES = 256 * 1024  # a read result's ceiling when the broker names no smaller packet limit
ENVELOPE_BYTES = 1024  # what a result holds besides its items: request_id, ok, ts, paging, the command's own keys


def result_budget(max_message_bytes: int | None) -> int:
    """Bytes a page's items may take: under READ_RESULT_BYTES and under the broker's limit, envelope kept aside."""
    limit = READ_RESULT_BYTES if max_message_bytes is None else min(READ_RESULT_BYTES, max_message_bytes)
    return max(256, limit - ENVELOPE_BYTES)


def page_of(items: list[Any], page: int, limit: int, max_bytes: int) -> dict[str, Any]:
    """items[page:] up to `limit` of them and `max_bytes` of JSON; `next` is where the following page starts
    (None at the end). One item too large alone is replaced by {"omitted_bytes": n} so paging still moves on."""
    out: list[Any] = []
    used = 0
    for item in items[page:page + limit]:
        size = len(to_json(item)) + 1
        if size > max_bytes:
            item, size = {"omitted_bytes": size - 1}, 32
        if used + size > max_bytes:
            break
        out.append(item)
        used += size
    end = page + len(out)
    return {"items": out, "page": page, "limit": limit, "next": end if end < len(items) else None,
            "total": len(items)}
