"""COC commands: size and shape checks, optional HMAC signatures with replay protection, routing."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import math
import time
from collections import Counter
from typing import Any

from agent.driver import CommandError, CommandHandler
from agent.logs import KvLogger

HANDLER_TIMEOUT_S = 60.0


def canonical(name: str, body: dict[str, Any]) -> bytes:
    """The signed text: command name, newline, the body without `sig` as compact sorted JSON."""
    unsigned = {k: v for k, v in body.items() if k != "sig"}
    return (name + "\n" + json.dumps(unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=False)).encode()


def sign(key: bytes, name: str, body: dict[str, Any]) -> str:
    """What a COC computes to sign a command (also used by tests and the CLI)."""
    return hmac.new(key, canonical(name, body), hashlib.sha256).hexdigest()


class CommandRouter:
    """Turns raw cmd/{name} payloads into handler calls and result dicts; never raises."""

    def __init__(self, log: KvLogger, max_bytes: int, key: bytes | None, window_s: float) -> None:
        self.log = log
        self.max_bytes = max_bytes
        self.key = key
        self.window_s = window_s
        self.handlers: dict[str, CommandHandler] = {}
        self.counters: Counter[str] = Counter()
        self._seen: dict[str, float] = {}

    def register(self, name: str, handler: CommandHandler) -> None:
        self.handlers[name] = handler

    def _reject(self, name: str, request_id: Any, reason: str, counter: str) -> dict[str, Any]:
        self.counters[f"rejected_{counter}"] += 1
        self.log.warning("command_rejected", command=name[:64], request_id=str(request_id)[:64], reason=reason)
        return {"request_id": request_id, "ok": False, "error": reason}

    def _verify(self, name: str, body: dict[str, Any]) -> str | None:
        """None when the signature and timestamp are good; otherwise the reason."""
        assert self.key is not None
        sig, ts = body.get("sig"), body.get("ts")
        if not isinstance(sig, str) or not isinstance(ts, (int, float)) or isinstance(ts, bool):
            return "unsigned command refused (needs ts and sig)"
        if not math.isfinite(ts) or abs(time.time() - ts) > self.window_s:
            return f"timestamp outside the {self.window_s:g} s window"
        if not hmac.compare_digest(sign(self.key, name, body), sig):
            return "bad signature"
        now = time.monotonic()
        for old in [s for s, exp in self._seen.items() if exp < now]:
            del self._seen[old]
        if sig in self._seen:
            return "replayed command"
        self._seen[sig] = now + 2 * self.window_s
        return None

    async def handle(self, name: str, payload: bytes) -> dict[str, Any]:
        """Validate and run one command; the dict returned is the result to publish."""
        if len(payload) > self.max_bytes:
            return self._reject(name, None, f"command too large ({len(payload)} > {self.max_bytes} bytes)",
                                "oversized")
        try:
            body = json.loads(payload.decode("utf-8")) if payload else {}
        except (UnicodeDecodeError, ValueError) as exc:
            return self._reject(name, None, f"malformed JSON: {str(exc)[:120]}", "malformed")
        if not isinstance(body, dict):
            return self._reject(name, None, "command must be a JSON object", "malformed")
        request_id = body.get("request_id")
        if request_id is not None and not isinstance(request_id, (str, int)):
            return self._reject(name, None, "request_id must be a string or integer", "malformed")
        if self.key is not None:
            why = self._verify(name, body)
            if why:
                return self._reject(name, request_id, why, "auth")
        handler = self.handlers.get(name)
        if handler is None:
            return self._reject(name, request_id, f"unknown command {name[:64]!r}", "unknown")
        # `source` is set only by in-process callers (call_local): a COC payload cannot claim to be the console
        args = {k: v for k, v in body.items() if k not in ("request_id", "ts", "sig", "source")}
        try:
            result = await asyncio.wait_for(handler(args), HANDLER_TIMEOUT_S)
        except CommandError as exc:
            return self._reject(name, request_id, str(exc), "invalid")
        except TimeoutError:
            return self._reject(name, request_id, f"handler timed out after {HANDLER_TIMEOUT_S:g} s", "timeout")
        except Exception as exc:  # a handler bug must not take the uplink down
            self.log.exception("command_failed", exc, command=name, request_id=str(request_id))
            return self._reject(name, request_id, f"internal error: {type(exc).__name__}", "internal")
        self.counters["ok"] += 1
        self.log.info("command_done", command=name, request_id=str(request_id))
        out: dict[str, Any] = {"request_id": request_id, "ok": True}
        if isinstance(result, dict):
            out.update({k: v for k, v in result.items() if k not in ("request_id", "ok")})
        return out

    async def call_local(self, name: str, args: dict[str, Any], source: str) -> dict[str, Any]:
        """An in-process client (the console) calls a handler: same handlers and result shape, no signature."""
        handler = self.handlers.get(name)
        if handler is None:
            return self._reject(name, None, f"unknown command {name[:64]!r}", "unknown")
        try:
            result = await asyncio.wait_for(handler({**args, "source": source}), HANDLER_TIMEOUT_S)
        except CommandError as exc:
            return self._reject(name, None, str(exc), "invalid")
        except TimeoutError:
            return self._reject(name, None, f"handler timed out after {HANDLER_TIMEOUT_S:g} s", "timeout")
        except Exception as exc:  # a handler bug must not take the caller down
            self.log.exception("command_failed", exc, command=name, source=source)
            return self._reject(name, None, f"internal error: {type(exc).__name__}", "internal")
        self.counters["ok"] += 1
        self.log.info("command_done", command=name, source=source)
        out: dict[str, Any] = {"ok": True}
        if isinstance(result, dict):
            out.update({k: v for k, v in result.items() if k not in ("request_id", "ok")})
        return out
