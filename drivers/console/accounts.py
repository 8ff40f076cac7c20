"""Local accounts (official / technician) in one JSON file, passwords hashed with scrypt."""

from __future__ import annotations

import ctypes
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from agent.statefile import read_json, write_json
from drivers.console.kdf import check_password, hash_password

Role = Literal["official", "technician"]
ROLES: tuple[Role, ...] = ("official", "technician")
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,31}$")
MIN_PASSWORD = 8
MAX_PASSWORD = 256


class AccountError(ValueError):
    """A refused account change; the message names the problem."""


def release_memory() -> None:
    """Give freed heap back to the system (render buffers after a preview or an upload)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


@dataclass(frozen=True)
class User:
    name: str
    role: Role
    password_hash: str
    created: float


class Accounts:
    """The accounts file; re-read when it changes on disk (the CLI edits it while the agent runs)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._users: dict[str, User] = {}
        self._sig: tuple[int, int] | None = None

    def _load(self) -> None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._users, self._sig = {}, None
            return
        sig = (st.st_mtime_ns, st.st_size)
        if sig == self._sig:
            return
        data = read_json(self.path)
        users: dict[str, User] = {}
        if isinstance(data, dict) and isinstance(data.get("users"), dict):
            for name, u in data["users"].items():
                if isinstance(u, dict) and u.get("role") in ROLES and isinstance(u.get("password"), str):
                    users[name] = User(name, u["role"], u["password"], float(u.get("created") or 0))
        self._users, self._sig = users, sig

    def _save(self) -> None:
        data: dict[str, Any] = {"users": {u.name: {"role": u.role, "password": u.password_hash, "created": u.created}
                                          for u in self._users.values()}}
        write_json(self.path, data)
        os.chmod(self.path, 0o600)
        self._sig = None

    def users(self) -> list[User]:
        self._load()
        return sorted(self._users.values(), key=lambda u: u.name)

    def get(self, name: str) -> User | None:
        self._load()
        return self._users.get(name)

    def verify(self, name: str, password: str) -> User | None:
        """The user if the password is right; the same work is done for an unknown name."""
        user = self.get(name)
        ok = check_password(password, user.password_hash if user else None)
        return user if ok and user is not None else None

    @staticmethod
    def _check_password(password: str) -> None:
        if len(password) < MIN_PASSWORD:
            raise AccountError(f"password too short (at least {MIN_PASSWORD} characters)")
        if len(password) > MAX_PASSWORD:
            raise AccountError(f"password too long (at most {MAX_PASSWORD} characters)")

    def add(self, name: str, role: str, password: str) -> User:
        self._load()
        if not USERNAME.match(name):
            raise AccountError("user name must be 2-32 of a-z 0-9 . _ - (starting with a letter or digit)")
        if role not in ROLES:
            raise AccountError(f"role must be one of {', '.join(ROLES)}")
        if name in self._users:
            raise AccountError(f"user {name!r} exists; use passwd")
        self._check_password(password)
        user = User(name, role, hash_password(password), round(time.time(), 3))  # type: ignore[arg-type]
        self._users[name] = user
        self._save()
        return user

    def passwd(self, name: str, password: str) -> None:
        self._load()
        user = self._users.get(name)
        if user is None:
            raise AccountError(f"no user {name!r}")
        self._check_password(password)
        self._users[name] = User(name, user.role, hash_password(password), user.created)
        self._save()

    def remove(self, name: str) -> None:
        self._load()
        if name not in self._users:
            raise AccountError(f"no user {name!r}")
        del self._users[name]
        self._save()
