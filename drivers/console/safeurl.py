"""Where a redirect may go: a path on this console, judged the way a browser reads the Location header."""

from __future__ import annotations

import unicodedata
from urllib.parse import quote, unquote, urljoin, urlsplit

_HOST = "console.invalid"
_KEEP = "!#$%&'()*+,-./:;=?@[]_~"  # printable ASCII a path and query keep as they are
MAX_TARGET = 2000


def local_path(target: str) -> str:
    """`target` when a browser following it stays on this site, otherwise "/".

    Browsers drop tabs and newlines and read a backslash as a slash before they resolve a URL, so
    "/\\t/evil.example" means "//evil.example": any control, format or space character and any backslash
    refuses the target outright, so do dot segments (plain or %2e), and it is resolved again as a browser
    would before it is trusted."""
    if not target.startswith("/") or target.startswith("//") or len(target) > MAX_TARGET:
        return "/"
    if any(c == "\\" or unicodedata.category(c)[0] in "CZ" for c in target):
        return "/"
    url = urlsplit(urljoin(f"http://{_HOST}/", target))
    if url.scheme != "http" or url.netloc != _HOST or url.path.startswith("//"):
        return "/"
    path = target.split("?", 1)[0].split("#", 1)[0]
    if any(unquote(seg) in (".", "..") for seg in path.split("/")):  # "/..//x" is "//x" to a browser
        return "/"
    return quote(target, safe=_KEEP)  # letters outside ASCII as %XX: the header stays plain ASCII
