"""On-site checks for a technician: each answers one question with ok, warn or FAIL."""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import ssl
import threading
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agent.config import spool_path
from agent.section import read_secret

Result = tuple[str, str, str]


def _data_dir(cfg: Any) -> Result:
    d = cfg.data_dir
    if not d.exists():
        return ("warn", "data_dir", f"{d} does not exist yet (created at start)")
    if not os.access(d, os.W_OK):
        return ("FAIL", "data_dir", f"{d} is not writable by uid {os.getuid()}")
    free = shutil.disk_usage(d).free
    level = "ok" if free > 512 * 1024 * 1024 else "warn"
    return (level, "data_dir", f"{d} writable, {free // (1024 * 1024)} MiB free")


def _spool(cfg: Any) -> Result:
    path = spool_path(cfg)
    if not path.exists():
        return ("ok", "spool", f"{path} not created yet")
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        check = db.execute("PRAGMA quick_check").fetchone()[0]
        depth = db.execute("SELECT count(*) FROM msgs").fetchone()[0]
        db.close()
    except sqlite3.Error as exc:
        return ("FAIL", "spool", f"{path}: {exc} (the agent moves a corrupt spool aside at start)")
    if check != "ok":
        return ("FAIL", "spool", f"{path}: integrity {check}")
    return ("ok", "spool", f"{path}: {depth} messages waiting")


def _broker(cfg: Any) -> list[Result]:
    coc = cfg.coc
    try:
        with socket.create_connection((coc.host, coc.port), timeout=5):
            pass
    except OSError as exc:
        return [("FAIL", "coc_tcp", f"{coc.host}:{coc.port} unreachable: {exc}")]
    out: list[Result] = [("ok", "coc_tcp", f"{coc.host}:{coc.port} reachable")]
    done = threading.Event()
    answer: dict[str, str] = {}
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"commune-agent-doctor-{os.getpid()}",
                         protocol=mqtt.MQTTv5 if coc.mqtt_version == "5" else mqtt.MQTTv311)
    if coc.username:
        client.username_pw_set(coc.username, read_secret(coc.password_file))
    if coc.tls is not None:
        client.tls_set(ca_certs=str(coc.tls.ca_file), certfile=str(coc.tls.cert_file) if coc.tls.cert_file else None,
                       keyfile=str(coc.tls.key_file) if coc.tls.key_file else None, cert_reqs=ssl.CERT_REQUIRED)

    def on_connect(c: Any, u: Any, flags: Any, rc: Any, props: Any = None) -> None:
        answer["rc"] = str(rc)
        answer["ok"] = "" if rc.is_failure else "yes"
        done.set()

    client.on_connect = on_connect
    try:
        client.connect(coc.host, coc.port, 10)
        client.loop_start()
        if not done.wait(10):
            out.append(("FAIL", "coc_login", "no answer to MQTT CONNECT within 10 s"))
        elif answer.get("ok"):
            out.append(("ok", "coc_login", f"logged in as {coc.username or '(certificate)'}"))
        else:
            out.append(("FAIL", "coc_login", f"broker refused: {answer.get('rc')}"))
    except (OSError, ssl.SSLError) as exc:
        out.append(("FAIL", "coc_login", str(exc)))
    finally:
        client.loop_stop()
        client.disconnect()
    return out


def run_checks(cfg: Any) -> list[Result]:
    return [("ok", "config", "valid"), _data_dir(cfg), _spool(cfg), *_broker(cfg)]
