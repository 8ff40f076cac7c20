"""The pronunciation lexicon officials edit: written forms (abbreviations, place and village names) → spoken forms.

Kept on the box as `lexicon.json` in the broadcast data dir, changed only through the `broadcast` command
(action `lexicon`, from the console or the COC), and applied by the normaliser before either engine speaks.
"""

from __future__ import annotations

import re
import time
import unicodedata
from pathlib import Path
from typing import Any, Mapping

from agent.statefile import read_json

FILE = "lexicon.json"
MAX_ENTRIES = 500
MAX_WRITTEN = 40
MAX_SPOKEN = 120
OPS = ("get", "set", "delete", "replace")
_BAD = re.compile(r"[\x00-\x1f\x7f\u200b-\u200f\u2028\u2029\ufeff<>{}\[\]\\|`\"]")


class LexiconError(ValueError):
    """An entry or a change that does not fit; the message names the entry and why."""


def _text(v: object, where: str, limit: int) -> str:
    if not isinstance(v, str):
        raise LexiconError(f"{where}: must be text")
    s = re.sub(r"\s+", " ", unicodedata.normalize("NFC", v)).strip()
    if not s or len(s) > limit:
        raise LexiconError(f"{where}: 1 to {limit} characters")
    if _BAD.search(s):
        raise LexiconError(f"{where}: control characters, brackets, quotes and <> are not allowed")
    return s


def check_entries(raw: object, *, limit: int = MAX_ENTRIES) -> dict[str, str]:
    """Validated, NFC, single-spaced entries; a written form must begin and end with a letter or digit."""
    if not isinstance(raw, dict):
        raise LexiconError("entries must be an object of written form → spoken form")
    if len(raw) > limit:
        raise LexiconError(f"at most {limit} entries")
    out: dict[str, str] = {}
    for k, v in raw.items():
        written = _text(k, f"entry {str(k)[:40]!r}", MAX_WRITTEN)
        if not (written[0].isalnum() and (written[-1].isalnum() or written[-1] == ".")):
            raise LexiconError(f"entry {written!r}: must begin with a letter or digit and end with one (or a dot)")
        out[written] = _text(v, f"entry {written!r}", MAX_SPOKEN)
    return out


def read_lexicon(path: Path) -> dict[str, Any]:
    """The stored document ({version, entries, updated_at, updated_by}); an empty lexicon when absent or unreadable."""
    doc = read_json(path)
    if not isinstance(doc, dict):
        return {"version": 0, "entries": {}, "updated_at": None, "updated_by": None}
    try:
        entries = check_entries(doc.get("entries", {}))
    except LexiconError:
        entries = {}
    return {"version": int(doc.get("version") or 0), "entries": entries, "updated_at": doc.get("updated_at"),
            "updated_by": doc.get("updated_by")}


class Lexicon:
    """The live lexicon of one box: what the synthesizer reads on every render."""

    def __init__(self, path: Path) -> None:
        self.path = path
        doc = read_lexicon(path)
        self.version: int = doc["version"]
        self.entries: dict[str, str] = doc["entries"]
        self.updated_at: float | None = doc["updated_at"]
        self.updated_by: str | None = doc["updated_by"]

    def doc(self) -> dict[str, Any]:
        return {"version": self.version, "entries": dict(self.entries), "updated_at": self.updated_at,
                "updated_by": self.updated_by}

    def change(self, op: str, args: Mapping[str, Any], source: str) -> dict[str, Any]:
        """The document after `op` (set: merge, delete: drop written forms, replace: the whole lexicon); not saved."""
        if op not in OPS or op == "get":
            raise LexiconError(f"op must be one of {', '.join(OPS)}")
        if op == "delete":
            keys = args.get("written")
            if not isinstance(keys, list) or not keys or len(keys) > MAX_ENTRIES:
                raise LexiconError(f"delete needs written: a list of 1 to {MAX_ENTRIES} written forms")
            entries = {k: v for k, v in self.entries.items() if k not in {str(x) for x in keys}}
        else:
            new = check_entries(args.get("entries"))
            entries = new if op == "replace" else {**self.entries, **new}
            if len(entries) > MAX_ENTRIES:
                raise LexiconError(f"at most {MAX_ENTRIES} entries (this change makes {len(entries)})")
        return {"version": self.version + 1, "entries": entries, "updated_at": round(time.time(), 3),
                "updated_by": source[:80]}

    def adopt(self, doc: dict[str, Any]) -> None:
        self.version, self.entries = doc["version"], doc["entries"]
        self.updated_at, self.updated_by = doc["updated_at"], doc["updated_by"]
