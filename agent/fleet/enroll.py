"""`fleet enroll SITE`: everything a new box needs (its config, its own MQTT login, the COC's public keys) and the
broker's lines for that login (mosquitto password_file and acl_file), so the per-site ACL is one command."""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from agent.config import SiteConfig
from agent.fleet.config import FleetCliConfig, FleetError
from agent.section import read_key_file
from agent.signing import public_pem, read_private_key
from agent.starter import StarterAnswers, render

PBKDF2_ITERATIONS = 101  # what mosquitto_passwd 2.0 writes; the password is 32 random bytes, not a human's
BOX_DIR = Path("/etc/commune-agent")
RELEASE_DIR = Path("/opt/commune-agent/releases")  # the release layout install.sh sets up


def mosquitto_hash(password: str, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS) -> str:
    """mosquitto 2's password_file hash: `$7$<iterations>$<base64 salt>$<base64 PBKDF2-HMAC-SHA512>`."""
    salt = secrets.token_bytes(12) if salt is None else salt
    dk = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(dk).decode()}"


def acl_lines(prefix: str, site: str) -> list[str]:
    """The site may publish only under its own prefix and read only its commands and the published releases."""
    return [f"user {site}", f"topic write {prefix}/{site}/#", f"topic read {prefix}/{site}/cmd/#",
            f"topic read {prefix}/releases/#"]


@dataclass
class Enrolment:
    site: str
    out: Path
    files: dict[str, str]
    password_line: str
    acl: list[str]

    def as_json(self) -> dict[str, object]:
        return {"site": self.site, "out": str(self.out), "files": self.files, "password_file_line":
                self.password_line, "acl_file_lines": self.acl}


def _write(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _public(path: Path | None, what: str) -> bytes:
    if path is None:
        raise FleetError(f"{what} is not set in the fleet config (make the keys with `commune-agent fleet keygen`)")
    try:
        return public_pem(read_private_key(path.expanduser()).public_key())
    except ValueError as exc:
        raise FleetError(str(exc)) from None


def enroll(cfg: FleetCliConfig, site: str, name: str, coc_host: str, coc_port: int | None, ca_file: Path | None,
           out: Path, box_dir: Path) -> Enrolment:
    """Write the box's files into `out` (which must not exist yet); paths in agent.yaml are under box_dir, where
    the technician copies them."""
    try:
        SiteConfig(site_id=site)
    except ValidationError:
        raise FleetError(f"site id {site!r}: letters, digits, - and _ only, at most 64") from None
    if ca_file is None and cfg.broker.tls is not None:
        ca_file = cfg.broker.tls.ca_file
    change_pub = _public(cfg.change_key_file, "change_key_file")
    release_pub = _public(cfg.release_key_file, "release_key_file")
    if cfg.command_key_file is not None:
        try:
            read_key_file(cfg.command_key_file)
        except ValueError as exc:
            raise FleetError(str(exc)) from None
        command_key = cfg.command_key_file.read_bytes()
    else:  # no shared key for plain commands: this box gets its own
        command_key = f"hex:{secrets.token_hex(32)}\n".encode()
    try:
        ca = ca_file.read_bytes() if ca_file is not None else None
    except OSError as exc:
        raise FleetError(f"CA file {ca_file}: cannot read: {exc.strerror or exc}") from None
    try:
        out.mkdir(parents=True, exist_ok=False, mode=0o700)
    except FileExistsError:
        raise FleetError(f"{out} exists already: give another --out (nothing was written)") from None
    except OSError as exc:
        raise FleetError(f"cannot write {out}: {exc.strerror or exc}") from None
    password = secrets.token_urlsafe(32)
    answers = StarterAnswers(site_id=site, site_name=name, coc_host=coc_host,
                             coc_port=coc_port or (8883 if ca else 1883), username=site,
                             password_file=box_dir / "coc.password", ca_file=box_dir / "coc-ca.crt" if ca else None,
                             command_key_file=box_dir / "command.key")
    text = render(answers) + "\n".join([
        "",
        "# Changes from the COC (configuration, releases) are signed; only these public keys are on the box.",
        "fleet:",
        f"  change_key_file: \"{box_dir / 'change.pub'}\"",
        f"  release_key_file: \"{box_dir / 'release.pub'}\"",
        f"  release_dir: \"{RELEASE_DIR}\"   # made by install.sh; self-update is refused without it",
    ]) + "\n"
    blobs = {"agent.yaml": (text.encode("utf-8"), 0o640), "coc.password": (password.encode() + b"\n", 0o600),
             "command.key": (command_key, 0o600), "change.pub": (change_pub, 0o644),
             "release.pub": (release_pub, 0o644)}
    if ca is not None:
        blobs["coc-ca.crt"] = (ca, 0o644)
    try:
        for fname, (data, mode) in blobs.items():
            _write(out / fname, data, mode)
    except OSError as exc:
        shutil.rmtree(out, ignore_errors=True)
        raise FleetError(f"cannot write {out}: {exc.strerror or exc}") from None
    return Enrolment(site, out, {f: str(box_dir / f) for f in blobs}, f"{site}:{mosquitto_hash(password)}",
                     acl_lines(cfg.topic_prefix, site))
