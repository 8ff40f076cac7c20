"""COC commands: size and shape checks, HMAC signatures over site and command, replay memory on disk, routing."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import math
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from agent.command_args import all_commands, check
from agent.driver import CommandError, CommandHandler
from agent.logs import KvLogger
from agent.signing import sign_bytes, verify_bytes
from agent.statefile import read_json, write_json

HANDLER_TIMEOUT_S = 60.0
_SIG = re.compile(r"[0-9a-f]{64}")
PEEK_BYTES = 1024  # where a request_id is looked for in a payload that cannot be parsed whole
_REQUEST_ID = re.compile(rb'"request_id"\s*:\s*("(?:[^"\\\x00-\x1f]|\\.){0,200}"|-?[0-9]{1,19}(?![0-9.eE]))')
_MAX_SEEN = 100_000  # replay memory bound: a flood of valid signatures cannot grow it without end


def canonical(site_id: str, name: str, body: dict[str, Any]) -> bytes:
    """The signed text: site id, newline, command name, newline, the body without `sig` as compact sorted JSON."""
    unsigned = {k: v for k, v in body.items() if k != "sig"}
    text = json.dumps(unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return f"{site_id}\n{name}\n{text}".encode()


def sign(key: bytes, site_id: str, name: str, body: dict[str, Any]) -> str:
    """What a COC computes to sign a command for one site (also used by tests)."""
    return hmac.new(key, canonical(site_id, name, body), hashlib.sha256).hexdigest()


def sign_change(key: Ed25519PrivateKey, site_id: str, name: str, body: dict[str, Any]) -> str:
    """What the COC computes to sign a change command (configuration, release) for one site."""
    return sign_bytes(key, canonical(site_id, name, body))


def _valid_request_id(value: Any) -> bool:
    if isinstance(value, str):
        return len(value) <= 200
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) < 1 << 63


def peek_request_id(payload: bytes) -> str | int | None:
    """The request_id of a payload that is not run (too large, malformed, lone surrogates), read from its first
    PEEK_BYTES by a bounded pattern, so even a refusal can be matched to its request; None when none is readable."""
    found = _REQUEST_ID.search(payload[:PEEK_BYTES])
    if found is None:
        return None
    try:
        value = json.loads(found.group(1).decode("utf-8"))
        if isinstance(value, str):
            value.encode("utf-8")  # a lone surrogate cannot be echoed in valid UTF-8
    except (UnicodeError, ValueError):
        return None
    return value if _valid_request_id(value) else None


def _printable_name(name: str) -> str:
    return name[:64].encode("utf-8", "backslashreplace").decode("utf-8")


class ReplayMemory:
    """Signatures seen within the window, kept on disk so a restart does not forget them.

    One is forgotten only when the wall clock is past its window *and* it has been held for twice the window
    on the monotonic clock: a wall clock that jumps forward and is then set back finds last window's
    signatures still here, however large the jump."""

    def __init__(self, path: Path | None, log: KvLogger, window_s: float, wall: Callable[[], float] = time.time,
                 mono: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self.log = log
        self.window_s = window_s
        self._wall, self._mono = wall, mono
        self.seen: dict[str, float] = {}  # sig -> wall-clock time after which its ts is outside the window
        self._held: dict[str, float] = {}  # sig -> monotonic time before which it is kept whatever the wall says
        if path is not None:
            data = read_json(path)
            if isinstance(data, dict):
                # the wall clock now may be a jumped one: nothing is dropped on it, every entry is held anew
                kept = sorted(((float(v), k) for k, v in data.items() if isinstance(k, str)
                               and isinstance(v, (int, float)) and not isinstance(v, bool)
                               and math.isfinite(v)), reverse=True)[:_MAX_SEEN]
                self.seen = {k: v for v, k in kept}
                hold = self._mono() + self._hold_s()
                self._held = dict.fromkeys(self.seen, hold)

    def _hold_s(self) -> float:
        """Monotonic time after which the real time is past any window a signature accepted now belongs to."""
        return 2 * self.window_s + 1

    def remember(self, sig: str, ts: float) -> bool:
        """False if sig was seen; raises OSError if it cannot be saved (the caller refuses the command)."""
        wall, mono = self._wall(), self._mono()
        gone = [s for s, t in self.seen.items() if t <= wall and self._held.get(s, 0.0) <= mono]
        for s in gone:
            del self.seen[s]
            self._held.pop(s, None)
        if sig in self.seen:
            return False
        if len(self.seen) >= _MAX_SEEN:
            raise OSError("replay memory full")
        self.seen[sig] = ts + self.window_s + 1
        self._held[sig] = mono + self._hold_s()
        if self.path is not None:
            try:
                write_json(self.path, self.seen, indent=None)
            except OSError:
                del self.seen[sig], self._held[sig]
                raise
        return True


class CommandRouter:
    """Turns raw cmd/{name} payloads into handler calls and result dicts; never raises."""

    def __init__(self, log: KvLogger, max_bytes: int, key: bytes | None, window_s: float, site_id: str = "",
                 replay_file: Path | None = None, *, replay: ReplayMemory | None = None,
                 wall: Callable[[], float] = time.time, mono: Callable[[], float] = time.monotonic) -> None:
        """`replay` is the memory of a router this one replaces (a reload must not forget what was seen)."""
        self.log = log
        self.max_bytes = max_bytes
        self.key = key
        self.window_s = window_s
        self.site_id = site_id
        self.handlers: dict[str, CommandHandler] = {}
        self.schemas = all_commands()  # name -> argument schema, checked before the handler runs
        self.change_names: set[str] = set()  # commands that only the COC's Ed25519 change key authorises
        self.change_key: Ed25519PublicKey | None = None
        self.counters: Counter[str] = Counter()
        self._wall = wall
        if replay is None:
            replay = ReplayMemory(replay_file, log, window_s, wall, mono)
        replay.window_s = window_s
        self.replay = replay

    def register(self, name: str, handler: CommandHandler, change: bool = False) -> None:
        """`change`: the command changes what the box runs, so it needs the Ed25519 change signature."""
        self.handlers[name] = handler
        if name not in self.schemas:  # its handler alone checks its arguments, and no COC can learn them
            self.log.warning("command_without_schema", command=_printable_name(name))
        if change:
            self.change_names.add(name)
        else:
            self.change_names.discard(name)

    def _reject(self, name: str, request_id: Any, reason: str, counter: str) -> dict[str, Any]:
        self.counters[f"rejected_{counter}"] += 1
        self.log.warning("command_rejected", command=_printable_name(name), request_id=str(request_id)[:64],
                         reason=reason)
        return {"request_id": request_id, "ok": False, "error": reason}

    def _verify(self, name: str, body: dict[str, Any]) -> str | None:
        """None when the signature and timestamp are good; otherwise the reason."""
        change = name in self.change_names
        if change and self.change_key is None:
            return "change commands need fleet.change_key_file (signing is off): refused"
        sig, ts = body.get("sig"), body.get("ts")
        if not isinstance(sig, str) or not isinstance(ts, (int, float)) or isinstance(ts, bool):
            return "unsigned command refused (needs ts and sig)"
        if change and not verify_bytes(self.change_key, canonical(self.site_id, name, body), sig):
            return "bad signature (change commands are signed with the COC's Ed25519 change key)"
        if not change and not _SIG.fullmatch(sig):
            return "bad signature (sig must be 64 lowercase hex digits)"
        try:
            ts = float(ts)
        except OverflowError:
            return f"timestamp outside the {self.window_s:g} s window"
        if not math.isfinite(ts) or abs(self._wall() - ts) > self.window_s:
            return f"timestamp outside the {self.window_s:g} s window"
        if not change and (self.key is None or
                           not hmac.compare_digest(sign(self.key, self.site_id, name, body).encode(), sig.encode())):
            return "bad signature"
        try:
            if not self.replay.remember(sig, ts):
                return "replayed command"
        except OSError as exc:
            return f"replay memory cannot be saved ({exc.strerror or exc}); refused"
        return None

    def _stamped(self, result: dict[str, Any]) -> dict[str, Any]:
        """Every result says when it was made (the COC's clock may differ; this is the box's)."""
        result["ts"] = round(self._wall(), 3)
        return result

    async def handle(self, name: str, payload: bytes) -> dict[str, Any]:
        """Validate and run one command; the dict returned is the result to publish."""
        try:
            return self._stamped(await self._handle(name, payload))
        except Exception as exc:  # the promise is a result for every command, whatever arrives
            self.log.exception("command_failed", exc, command=_printable_name(name))
            self.counters["rejected_internal"] += 1
            return self._stamped({"request_id": peek_request_id(payload), "ok": False,
                                  "error": f"internal error: {type(exc).__name__}"})

    async def _handle(self, name: str, payload: bytes) -> dict[str, Any]:
        if not payload:  # also how MQTT clears a retained message: never a call with no arguments
            return self._reject(name, None, "empty payload", "empty")
        if len(payload) > self.max_bytes:
            return self._reject(name, peek_request_id(payload),
                                f"command too large ({len(payload)} > {self.max_bytes} bytes)", "oversized")
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            return self._reject(name, peek_request_id(payload), "command name is not valid UTF-8", "malformed")
        try:
            body = json.loads(payload.decode("utf-8"))
            json.dumps(body, ensure_ascii=False).encode("utf-8")  # lone surrogates from \ud800 escapes
        except (UnicodeError, ValueError, RecursionError) as exc:
            return self._reject(name, peek_request_id(payload), f"malformed JSON: {str(exc)[:120]}", "malformed")
        if not isinstance(body, dict):
            return self._reject(name, None, "command must be a JSON object", "malformed")
        request_id = body.get("request_id")
        if request_id is not None and (not isinstance(request_id, (str, int)) or isinstance(request_id, bool)):
            return self._reject(name, None, "request_id must be a string or integer", "malformed")
        if not _valid_request_id(request_id) and request_id is not None:
            return self._reject(name, None, "request_id longer than 200 characters or out of range", "malformed")
        if self.key is not None or name in self.change_names:
            why = self._verify(name, body)
            if why:
                return self._reject(name, request_id, why, "auth")
        # `source` is set only by in-process callers (call_local): a COC payload cannot claim to be the console
        args = {k: v for k, v in body.items() if k not in ("request_id", "ts", "sig", "source")}
        return await self._run(name, args, request_id, "coc")

    async def call_local(self, name: str, args: dict[str, Any], source: str,
                         request_id: str | int | None = None) -> dict[str, Any]:
        """Run a registered handler for an in-process client that has already authenticated its user
        (the local console): no signature, same result shape, counted apart as `local_*`."""
        try:
            if not isinstance(args, dict):
                return self._stamped(self._reject(name, request_id, "arguments must be a mapping",
                                                  "local_malformed"))
            return self._stamped(await self._run(name, {**args, "source": source}, request_id, source,
                                                 prefix="local_"))
        except Exception as exc:
            self.log.exception("command_failed", exc, command=_printable_name(name), source=source)
            self.counters["local_rejected_internal"] += 1
            return self._stamped({"request_id": request_id, "ok": False,
                                  "error": f"internal error: {type(exc).__name__}"})

    async def _run(self, name: str, args: dict[str, Any], request_id: Any, source: str,
                   prefix: str = "") -> dict[str, Any]:
        handler = self.handlers.get(name)
        if handler is None:
            return self._reject(name, request_id, f"unknown command {_printable_name(name)!r}", prefix + "unknown")
        schema = self.schemas.get(name)
        why = check(schema, {k: v for k, v in args.items() if k != "source"}) if schema is not None else None
        if why:
            return self._reject(name, request_id, why[:900], prefix + "invalid")
        try:
            async with asyncio.timeout(HANDLER_TIMEOUT_S):
                result = await handler(args)
        except CommandError as exc:
            return self._reject(name, request_id, str(exc), prefix + "invalid")
        except TimeoutError:
            return self._reject(name, request_id, f"handler timed out after {HANDLER_TIMEOUT_S:g} s",
                                prefix + "timeout")
        except Exception as exc:  # a handler bug must not take the uplink down
            self.log.exception("command_failed", exc, command=name, request_id=str(request_id), source=source)
            return self._reject(name, request_id, f"internal error: {type(exc).__name__}", prefix + "internal")
        self.counters[prefix + "ok"] += 1
        self.log.info("command_done", command=name, request_id=str(request_id), source=source)
        out: dict[str, Any] = {"request_id": request_id, "ok": True}
        if isinstance(result, dict):
            out.update({k: v for k, v in result.items() if k not in ("request_id", "ok")})
        return out

