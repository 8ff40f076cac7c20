"""The `console` config section: where the web console listens, HTTPS, sessions, uploads, login throttling."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

from pydantic import Field, model_validator

from agent.section import SecretFile, Section


class ConsoleConfig(Section):
    """The local web console for officials and technicians, served by the agent on the LAN."""

    enabled: bool = Field(True, description="serve the console (false keeps the section but stops it)")
    listen: str = Field("0.0.0.0", description="address to listen on (0.0.0.0 = every LAN interface)")
    port: int = Field(8080, ge=1, le=65535, description="TCP port of the console")
    tls_cert_file: Optional[SecretFile] = Field(None, description="PEM certificate for HTTPS (with tls_key_file)")
    tls_key_file: Optional[SecretFile] = Field(None, description="PEM private key for HTTPS")
    session_lifetime_s: int = Field(8 * 3600, ge=60, le=30 * 86400,
                                    description="a login lasts this long, then the user logs in again")
    max_sessions: int = Field(500, ge=10, le=100000,
                              description="logged-in sessions kept in all (also across restarts); past it the oldest "
                                          "session of the user holding the most ends")
    max_sessions_per_user: int = Field(10, ge=1, le=1000,
                                       description="logged-in sessions one user may hold (phones, browsers); a new "
                                                   "login past it ends that user's own oldest, nobody else's")
    users_file: Optional[Path] = Field(None, description="accounts file (default {data_dir}/console/users.json)")
    language: Literal["vi", "en"] = Field("vi", description="language of the pages until a user picks one")
    max_upload_mb: int = Field(20, ge=1, le=200, description="largest recording an official may upload")
    max_recording_s: int = Field(900, ge=10, le=7200, description="longest recording accepted, in seconds")
    login_max_failures: int = Field(5, ge=1, le=100,
                                    description="failed logins per user or address before a pause")
    login_window_s: int = Field(300, ge=10, le=86400, description="window in which failed logins are counted")
    login_lockout_s: int = Field(300, ge=5, le=86400, description="pause after too many failed logins")
    login_audit_window_s: int = Field(60, ge=1, le=3600,
                                      description="refused logins are audited and sent to the COC as one sum per "
                                                  "client address per this many seconds")
    refresh_s: int = Field(5, ge=1, le=300, description="status pages refresh themselves this often")
    audit_keep_days: int = Field(730, ge=30, description="days the local audit trail is kept")

    @model_validator(mode="after")
    def _pair(self) -> ConsoleConfig:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together")
        return self
