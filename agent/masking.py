"""The configuration as someone other than the box's root may see it: anything named like a secret hidden.

One rule for every reader: the console's config page and the COC's `config_get`."""

from __future__ import annotations

import re
from typing import Any

_SECRET = re.compile(r"(password|passphrase|secret|token|key|community|credential)", re.I)
_USERINFO = re.compile(r"^([a-z][a-z0-9+.-]*://)[^/@\s]*@", re.I)  # rtsp://user:password@host/...
HIDDEN = "••••••"


def mask(value: Any, key: str = "") -> Any:
    """value (JSON-like) with every value under a secret-like key, and every URL's user info, replaced."""
    if isinstance(value, dict):
        return {k: mask(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v, key) for v in value]
    if value is not None and _SECRET.search(key):
        return HIDDEN
    if isinstance(value, str) and _USERINFO.match(value):
        return _USERINFO.sub(rf"\1{HIDDEN}@", value)
    return value
