"""Supervisor behaviour in a real process: restarts with backoff, SIGHUP, systemd notify, TLS."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
from pathlib import Path

import yaml

from tests.support.agentproc import AgentProcess, write_config
from tests.support.mosquitto import Broker, Recorder
from tests.support.wait import wait_until

BASE = "commune/v1/t1"


def test_crashing_driver_restarts_with_growing_backoff_and_health_shows_it(tmp_path: Path, broker: Broker,
                                                                           recorder: Recorder) -> None:
    cfg = write_config(tmp_path / "agent.yaml", broker.port, tmp_path / "data", broker.password_file("agent"))
    agent = AgentProcess(cfg, tmp_path / "agent.log", emitter={"rate_hz": 100, "count": 0, "crash_after": 3,
                                                               "acked_file": str(tmp_path / "acked")}).start()
    try:
        wait_until(lambda: agent.log_text().count("driver_crashed") >= 3, 30, what="three crashes")
        delays = [float(x) for x in re.findall(r"driver_crashed .*restart_in_s=([\d.]+)", agent.log_text())]
        assert delays[:3] == [1.0, 2.0, 4.0]
        assert "error=\"RuntimeError: deliberate crash\"" in agent.log_text()

        def failed_health() -> dict | None:
            for m in reversed(recorder.on(f"{BASE}/health")):
                d = m.json()["drivers"].get("emitter", {})
                if d.get("restarts", 0) >= 2:
                    return d
            return None

        d = wait_until(failed_health, 20, what="restarts in health")
        assert d["last_error"] == "RuntimeError: deliberate crash"
        # one crashing driver never stops the others
        assert wait_until(lambda: recorder.on(f"{BASE}/telemetry/host"), 10)
        assert agent.proc is not None and agent.proc.poll() is None
    finally:
        agent.stop()


def test_sighup_applies_a_valid_config_and_keeps_running_on_an_invalid_one(tmp_path: Path, broker: Broker,
                                                                           recorder: Recorder) -> None:
    # every host reading goes out, so the new interval shows as messages (by exception, still ones would wait)
    cfg = write_config(tmp_path / "agent.yaml", broker.port, tmp_path / "data", broker.password_file("agent"),
                       telemetry={"report_by_exception": False})
    agent = AgentProcess(cfg, tmp_path / "agent.log").start()
    try:
        first = wait_until(lambda: [m.json() for m in recorder.on(f"{BASE}/status")], 20, what="birth")[0]
        data = yaml.safe_load(cfg.read_text())
        data["host"]["interval_s"] = 2
        data["site"]["name"] = "Xã Nghi Ân"
        cfg.write_text(yaml.safe_dump(data, allow_unicode=True))
        agent.signal(signal.SIGHUP)
        wait_until(lambda: "reload_done" in agent.log_text(), 15, what="reload_done")
        births = wait_until(lambda: [m.json() for m in recorder.on(f"{BASE}/status")
                                     if m.json().get("config_sha") not in (None, first["config_sha"])], 15)
        assert births[-1]["site"]["name"] == "Xã Nghi Ân" and births[-1]["boot_id"] == first["boot_id"]
        # the host driver restarted with its new 2 s interval
        n = len(recorder.on(f"{BASE}/telemetry/host"))
        wait_until(lambda: len(recorder.on(f"{BASE}/telemetry/host")) >= n + 2, 10, what="2 s host telemetry")
        cfg.write_text(cfg.read_text() + "coc_typo: 1\n")
        agent.signal(signal.SIGHUP)
        wait_until(lambda: "reload_rejected" in agent.log_text(), 15, what="reload_rejected")
        assert "coc_typo: unknown key" in agent.log_text()
        recorder.publish(f"{BASE}/cmd/ping", json.dumps({"request_id": "alive"}))
        wait_until(lambda: [m for m in recorder.on("/cmd/ping/result") if m.json()["request_id"] == "alive"], 10)
        recorder.publish(f"{BASE}/cmd/reload", json.dumps({"request_id": "rl"}))
        res = wait_until(lambda: [m.json() for m in recorder.on("/cmd/reload/result")], 10)[0]
        assert res["ok"] is False and "coc_typo" in res["error"]
    finally:
        agent.stop()


def test_systemd_notify_ready_status_and_watchdog(tmp_path: Path, broker: Broker) -> None:
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(20)
    cfg = write_config(tmp_path / "agent.yaml", broker.port, tmp_path / "data", broker.password_file("agent"))
    agent = AgentProcess(cfg, tmp_path / "agent.log",
                         env={"NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "1000000"}).start()
    try:
        seen: list[str] = []
        while not ({"READY=1", "WATCHDOG=1"} <= set(seen) and any(s.startswith("STATUS=") for s in seen)):
            seen += sock.recv(4096).decode().split("\n")
        status = next(s for s in seen if s.startswith("STATUS="))
        assert "uplink=" in status and "spool=" in status
        agent.signal(signal.SIGTERM)
        while "STOPPING=1" not in seen:
            seen += sock.recv(4096).decode().split("\n")
        assert agent.proc is not None and agent.proc.wait(10) == 0
    finally:
        sock.close()
        agent.stop()


def make_certs(d: Path) -> dict[str, Path]:
    def ossl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
         "-subj", "/CN=test-ca")
    for name, cn in (("server", "127.0.0.1"), ("client", "agent")):
        ossl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
             "-subj", f"/CN={cn}")
        (d / f"{name}.ext").write_text("subjectAltName=IP:127.0.0.1\n" if name == "server" else
                                       "extendedKeyUsage=clientAuth\n")
        ossl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext")
    return {k: d / v for k, v in {"ca": "ca.crt", "cert": "server.crt", "key": "server.key",
                                  "client_cert": "client.crt", "client_key": "client.key"}.items()}


def test_tls_with_client_certificate(tmp_path: Path) -> None:
    certs_dir = tmp_path / "pki"
    certs_dir.mkdir()
    certs = make_certs(certs_dir)
    broker = Broker(tmp_path / "mosq", tls={k: certs[k] for k in ("ca", "cert", "key")}).start()
    rec = Recorder(broker.port).start()
    cfg = write_config(tmp_path / "agent.yaml", broker.tls_port, tmp_path / "data", None,
                       coc={"tls": {"ca_file": str(certs["ca"]), "cert_file": str(certs["client_cert"]),
                                    "key_file": str(certs["client_key"])}})
    agent = AgentProcess(cfg, tmp_path / "agent.log").start()
    try:
        birth = wait_until(lambda: [m.json() for m in rec.on(f"{BASE}/status")], 20, what="birth over TLS")[0]
        assert birth["online"] is True
        wait_until(lambda: rec.on(f"{BASE}/telemetry/host"), 10, what="telemetry over TLS")
    finally:
        agent.stop()
        rec.stop()
        broker.stop()
