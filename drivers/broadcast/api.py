"""The broadcast family's face: what other families (the console, automations) may use of it.

Reads: bulletins parsed and validated, their next airings, a read-only view of the store and the as-run log,
the live state the driver writes, what is on air now (`on_air` events as a tap sees them: on_air_changes; the
zones on air when the live state was written: on_air_now). Changes go only through the `broadcast` command
(COMMAND, ACTIONS), so a bulletin from a phone, a file or the COC meets one validation, one store and one as-run
log. Names that need numpy, ffmpeg or croniter (next airings, decoding and levelling an upload) load on first use.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.statefile import read_json
from drivers.broadcast.bulletin import Bulletin, BulletinError, parse_bulletin
from drivers.broadcast.config import BroadcastConfig, TtsConfig
from drivers.broadcast.lexicon import FILE as LEXICON_FILE
from drivers.broadcast.lexicon import MAX_ENTRIES as LEXICON_MAX_ENTRIES
from drivers.broadcast.lexicon import LexiconError, check_entries, read_lexicon
from drivers.broadcast.normalize_vi import Piece
from drivers.broadcast.normalize_vi import pieces as spoken_pieces
from drivers.broadcast.onair import EVENT as ON_AIR_EVENT
from drivers.broadcast.onair import OnAir
from drivers.broadcast.onair import from_items as on_air_changes
from drivers.broadcast.store import DB_FILE, BulletinRecord, Store

if TYPE_CHECKING:
    from drivers.broadcast.airtimes import Airing, next_airings
    from drivers.broadcast.audio import level_file
    from drivers.broadcast.decode import DecodeError, decode_capped

__all__ = ["ACTIONS", "Airing", "BroadcastConfig", "Bulletin", "BulletinError", "BulletinRecord", "COMMAND",
           "DecodeError", "LEXICON_FILE", "LEXICON_MAX_ENTRIES", "LexiconError", "ON_AIR_EVENT", "OnAir", "Piece",
           "SECTION", "STATE_FILE", "StoreView", "TtsConfig", "check_entries", "decode_capped", "level_file",
           "lexicon", "live_state", "next_airings", "on_air_changes", "on_air_now", "open_view", "parse_bulletin",
           "spoken_pieces"]

SECTION = "broadcast"  # the supervisor gives the driver <data_dir>/<section>
STATE_FILE = "state.json"
COMMAND = "broadcast"
ACTIONS = ("create", "update", "cancel", "play-now", "preview", "lexicon")
_ON_USE = {"next_airings": "drivers.broadcast.airtimes", "Airing": "drivers.broadcast.airtimes",
           "decode_capped": "drivers.broadcast.decode", "DecodeError": "drivers.broadcast.decode",
           "level_file": "drivers.broadcast.audio"}


def __getattr__(name: str) -> Any:
    """The heavy names, imported when first asked for (PEP 562): importing the face stays cheap."""
    module = _ON_USE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def live_state(data_root: Path) -> dict[str, Any] | None:
    """What the driver last wrote about each bulletin (next airing, engine, duration, speech error) and the
    bulletin files it refused; None before it ever wrote."""
    doc = read_json(data_root / SECTION / STATE_FILE)
    return doc if isinstance(doc, dict) else None


def on_air_now(data_root: Path) -> list[OnAir]:
    """The zones on air when the driver last wrote its live state (for a family starting mid-airing)."""
    doc = live_state(data_root) or {}
    rows = doc.get("on_air")
    return [a for a in (OnAir.from_json(d) for d in (rows if isinstance(rows, list) else [])) if a is not None]


def lexicon(data_root: Path) -> dict[str, Any]:
    """The box's pronunciation lexicon as last saved: {version, entries, updated_at, updated_by}."""
    return read_lexicon(data_root / SECTION / LEXICON_FILE)


class StoreView:
    """The schedule and the as-run log, read-only, through a connection of the reader's own (WAL: it never
    blocks the driver for long)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def version(self) -> int:
        """Changes whenever the driver or the CLI commits: the reader's cue to read again."""
        return self._store.data_version()

    def get(self, bulletin_id: str) -> BulletinRecord | None:
        return self._store.get(bulletin_id)

    def active(self) -> list[BulletinRecord]:
        return self._store.all()

    def asrun_find(self, **filters: Any) -> tuple[int, list[dict[str, Any]]]:
        """One page of as-run records, newest first, with the total (filters as `Store.asrun_find`)."""
        return self._store.asrun_find(**filters)

    def asrun_report(self, start: float, end: float) -> list[dict[str, Any]]:
        return self._store.asrun_report(start, end)

    def asrun_bulletins(self) -> list[str]:
        return self._store.asrun_bulletins()

    def close(self) -> None:
        self._store.close()


def open_view(data_root: Path, cache_kb: int) -> StoreView:
    """Opens the store for reading; `cache_kb` bounds the connection's page cache (the reader's memory budget)."""
    store = Store(data_root / SECTION / DB_FILE)
    store.db.execute(f"PRAGMA cache_size=-{int(cache_kb)}")
    return StoreView(store)
