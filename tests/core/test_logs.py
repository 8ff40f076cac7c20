"""Log lines: one line per event, key=value, secrets masked, values quoted when they need it."""

from __future__ import annotations

from agent.logs import kv


def test_kv_line_masks_secrets_and_quotes() -> None:
    line = kv("uplink_connect", {"host": "coc.example", "password": "hunter2", "api_token": "abc", "sig": "ff",
                                 "password_file": "/etc/commune-agent/coc.password", "detail": 'a "b"\nc',
                                 "empty": "", "skipped": None, "ratio": 0.123456789})
    assert line.startswith("uplink_connect host=coc.example ")
    assert "hunter2" not in line and "abc" not in line and "password=***" in line and "sig=***" in line
    assert "password_file=/etc/commune-agent/coc.password" in line
    assert 'detail="a \\"b\\"\\nc"' in line and "\n" not in line
    assert 'empty=""' in line and "skipped" not in line and "ratio=0.123457" in line
