"""HTTP digest authentication (RFC 7616: SHA-256 or MD5, qop=auth) for the client side."""

from __future__ import annotations

import hashlib
import re
import secrets

_PARAM = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')
_HASHES = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}


def parse_challenges(headers: list[str]) -> list[dict[str, str]]:
    """Every Digest challenge in the WWW-Authenticate headers, as lower-cased parameter dicts."""
    out = []
    for value in headers:
        for part in re.split(r"(?i)(?:^|,)\s*(?=digest\s)", value):
            if not part.lower().startswith("digest"):
                continue
            params = {m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
                      for m in _PARAM.finditer(part[6:])}
            out.append(params)
    return out


def choose(challenges: list[dict[str, str]]) -> dict[str, str] | None:
    """Prefer SHA-256 over MD5, as RFC 7616 asks; ignore algorithms we do not speak."""
    usable = [c for c in challenges if c.get("algorithm", "MD5").upper().removesuffix("-SESS") in _HASHES]
    usable.sort(key=lambda c: 0 if c.get("algorithm", "MD5").upper().startswith("SHA-256") else 1)
    return usable[0] if usable else None


def authorization(chal: dict[str, str], method: str, uri: str, user: str, password: str, nc: int = 1) -> str:
    algorithm = chal.get("algorithm", "MD5")
    base = algorithm.upper().removesuffix("-SESS")

    def h(text: str) -> str:
        return _HASHES[base](text.encode("utf-8")).hexdigest()

    realm, nonce = chal.get("realm", ""), chal.get("nonce", "")
    cnonce = secrets.token_hex(8)
    ha1 = h(f"{user}:{realm}:{password}")
    if algorithm.upper().endswith("-SESS"):
        ha1 = h(f"{ha1}:{nonce}:{cnonce}")
    ha2 = h(f"{method}:{uri}")
    qops = [q.strip() for q in chal.get("qop", "").split(",") if q.strip()]
    fields = [f'username="{user}"', f'realm="{realm}"', f'nonce="{nonce}"', f'uri="{uri}"',
              f"algorithm={algorithm}"]
    if "auth" in qops:
        ncs = f"{nc:08x}"
        response = h(f"{ha1}:{nonce}:{ncs}:{cnonce}:auth:{ha2}")
        fields += [f'response="{response}"', "qop=auth", f"nc={ncs}", f'cnonce="{cnonce}"']
    else:
        fields.append(f'response="{h(f"{ha1}:{nonce}:{ha2}")}"')
    if "opaque" in chal:
        fields.append(f'opaque="{chal["opaque"]}"')
    return "Digest " + ", ".join(fields)
