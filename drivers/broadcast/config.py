"""The `broadcast` config section: zones (outputs), quiet hours, misfire and interrupt policy, speech."""

from __future__ import annotations

import ipaddress
import re
from datetime import time
from pathlib import Path
from typing import Annotated, Literal, Optional, Union

from pydantic import Field, field_validator, model_validator

from agent.section import SecretFile, Section

ZONE_NAME = r"^[A-Za-z0-9_-]{1,32}$"


class Speaker(Section):
    """One loudspeaker of a zone, checked on a schedule and right before each airing; alive if every check answers."""

    name: Optional[str] = Field(None, description="name shown in health and the console (default: host, else the URL)")
    host: Optional[str] = Field(None, description="IPv4 address of the speaker, pinged (ICMP echo); null = no ping")
    status_url: Optional[str] = Field(None, description="the speaker's HTTP status API; any answer below 500 = alive")
    sip: Optional[str] = Field(None, description="where the speaker takes SIP (host[:port] or sip:user@host[:port]); "
                                                 "asked with SIP OPTIONS over UDP, any SIP answer = alive")

    @field_validator("host")
    @classmethod
    def _host(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                ipaddress.IPv4Address(v)
            except ValueError:
                raise ValueError(f"host must be an IPv4 address, not {v!r}") from None
        return v

    @field_validator("status_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("status_url must start with http:// or https://")
        return v

    @field_validator("sip")
    @classmethod
    def _sip(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^(sip:([^@\s]+@)?)?[A-Za-z0-9.-]+(:\d{1,5})?$", v):
            raise ValueError(f"sip must be host[:port] or sip:user@host[:port], not {v!r}")
        return v

    @model_validator(mode="after")
    def _something(self) -> Speaker:
        if not (self.host or self.status_url or self.sip):
            raise ValueError("a speaker needs host, status_url or sip to be checked")
        return self

    @property
    def label(self) -> str:
        return self.name or self.host or self.status_url or self.sip or "?"


class MonitorInput(Section):
    """A capture device (a USB sound card's line-in) wired to the amplifier's monitor output: proof it was heard."""

    device: str = Field(description="ALSA capture device, as arecord -D takes it (e.g. plughw:CARD=Device,DEV=0)")
    rate: int = Field(16000, ge=8000, le=48000, description="capture sample rate in Hz")
    heard_dbfs: float = Field(-45.0, ge=-90.0, le=0.0,
                              description="RMS level over the airing at or above which it counts as heard")


class _ZoneCommon(Section):
    volume: float = Field(1.0, ge=0.0, le=2.0, description="gain of this zone, times the bulletin's own volume")
    speakers: list[Speaker] = Field([], description="the zone's loudspeakers to check (empty = not checked)")
    monitor: Optional[MonitorInput] = Field(None, description="capture input that hears this zone (null = none)")


class SoundcardZone(_ZoneCommon):
    """The mini-PC's sound card into the amplifier of the wired loudspeakers."""

    type: Literal["soundcard"] = Field(description="zone kind: the local sound card")
    device: str = Field("default", description="PyAudio output device name (substring match), or 'default'")
    buffer_ms: int = Field(100, ge=20, le=2000, description="sound card buffer in milliseconds")


class _Multicast(_ZoneCommon):
    group: str = Field("239.255.10.10", description="IPv4 multicast group the speakers join")
    port: int = Field(5004, ge=1, le=65535, description="UDP port of the group")
    ttl: int = Field(1, ge=0, le=255, description="multicast TTL; 1 stays on the office LAN")
    interface: Optional[str] = Field(None, description="local IPv4 address that multicast leaves from")

    @field_validator("group")
    @classmethod
    def _multicast(cls, v: str) -> str:
        try:
            addr = ipaddress.IPv4Address(v)
        except ValueError:
            raise ValueError(f"not an IPv4 address: {v!r}") from None
        if not addr.is_multicast:
            raise ValueError(f"{v} is not a multicast address (224.0.0.0/4)")
        return v

    @field_validator("interface")
    @classmethod
    def _ipv4(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                ipaddress.IPv4Address(v)
            except ValueError:
                raise ValueError(f"interface must be a local IPv4 address, not {v!r}") from None
        return v


class RtpZone(_Multicast):
    """IP loudspeakers listening to an RTP multicast group (G.711 µ-law, 8 kHz, 20 ms packets)."""

    type: Literal["rtp"] = Field(description="zone kind: RTP multicast to IP loudspeakers")


class PagingZone(_Multicast):
    """IP speakers (Polycom/Algo-style group paging): alert, G.711 µ-law audio in 20 ms packets, end."""

    type: Literal["paging"] = Field(description="zone kind: Polycom-style multicast group paging")
    group: str = Field("224.0.1.116", description="IPv4 multicast group the speakers listen on")
    port: int = Field(5001, ge=1, le=65535, description="UDP port of the group")
    channel: int = Field(1, ge=1, le=50, description="paging group (1-25) or push-to-talk channel (26-50)")
    caller_id: str = Field("UBND xa", description="name the speakers show: 1-13 ASCII characters")

    @field_validator("caller_id")
    @classmethod
    def _caller(cls, v: str) -> str:
        if not 1 <= len(v) <= 13 or not v.isascii() or not v.isprintable():
            raise ValueError("caller_id must be 1-13 printable ASCII characters")
        return v


class HttpZone(_ZoneCommon):
    """An IP speaker that takes a POST of audio/basic (µ-law 8 kHz) with digest auth, as Axis speakers do."""

    type: Literal["http"] = Field(description="zone kind: HTTP push to one IP speaker")
    url: str = Field(description="e.g. http://10.0.0.21/axis-cgi/audio/transmit.cgi")
    username: Optional[str] = Field(None, description="digest auth user of the speaker")
    password_file: Optional[SecretFile] = Field(None, description="file holding the speaker's password")
    timeout_s: float = Field(5.0, gt=0, le=60, description="connect and write timeout in seconds")

    @field_validator("url")
    @classmethod
    def _http(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        return v

    @model_validator(mode="after")
    def _pair(self) -> HttpZone:
        if self.password_file is not None and not self.username:
            raise ValueError("password_file needs username")
        return self


Zone = Annotated[Union[SoundcardZone, RtpZone, PagingZone, HttpZone], Field(discriminator="type")]


class SpeakerChecks(Section):
    """How often the zones' speakers are checked; a speaker is down after `down_after` checks in a row fail."""

    interval_s: float = Field(10.0, ge=1.0, le=3600.0, description="seconds between two checks of every speaker")
    timeout_s: float = Field(2.0, gt=0.0, le=30.0, description="how long one check waits for an answer")
    down_after: int = Field(2, ge=1, le=20, description="failed checks in a row before a speaker is down")
    before_airing: bool = Field(True, description="check a zone's speakers again right before each airing")


class QuietHours(Section):
    """A nightly window in which only emergency bulletins are aired; may wrap midnight."""

    start: time = Field(time(21, 30), description="local time the quiet window starts")
    end: time = Field(time(5, 0), description="local time the quiet window ends (may be after midnight)")

    def contains(self, t: time) -> bool:
        if self.start <= self.end:
            return self.start <= t < self.end
        return t >= self.start or t < self.end


class TtsConfig(Section):
    """Speech: gTTS first (cached on disk), espeak-ng offline fallback, both loudness-normalised."""

    engines: list[Literal["gtts", "espeak"]] = Field(["gtts", "espeak"], min_length=1,
                                                     description="speech engines tried in order")
    gtts_lang: str = Field("vi", description="gTTS language")
    gtts_tld: str = Field("com.vn", description="Google host for gTTS; part of the cache key")
    gtts_timeout_s: float = Field(15.0, gt=0, le=120, description="gTTS network timeout in seconds")
    espeak_voice: str = Field("vi", description="espeak-ng voice: vi, vi-vn-x-central or vi-vn-x-south")
    region: Literal["north", "south"] = Field(
        "north", description="how numbers are read: north (linh, nghìn, mùng 5) or south (lẻ, ngàn, ngày 5)")
    espeak_speed_wpm: int = Field(140, ge=60, le=400, description="espeak-ng speed in words per minute")
    sample_rate: Literal[8000, 16000] = Field(16000, description="sample rate of rendered speech in Hz")
    target_dbfs: float = Field(-20.0, ge=-40.0, le=-6.0, description="gated RMS level both engines are set to")
    max_chars: int = Field(20000, ge=100, le=200000, description="longest bulletin text accepted")
    cache_max_mb: int = Field(500, ge=10, description="size limit of the rendered speech cache")
    prerender_ahead_h: float = Field(48.0, gt=0, description="render bulletins airing within this many hours")
    retry_gtts_s: float = Field(600.0, ge=30, description="retry gTTS this often for bulletins spoken by espeak")


class BroadcastConfig(Section):
    """Radio bulletins: where they come from, where they play, and the rules for airing them."""

    zones: dict[str, Zone] = Field(min_length=1, description="named outputs; bulletins name the zones they play on")
    default_zones: Optional[list[str]] = Field(None, description="zones for bulletins that name none (all if unset)")
    bulletin_dir: Optional[Path] = Field(None, description="watched directory of bulletin YAML files")
    quiet_hours: Optional[QuietHours] = Field(QuietHours(), description="only emergencies air in this window")
    misfire_grace_s: int = Field(300, ge=0, le=86400, description="a missed airing still plays if at most this late")
    emergency_interrupt: Literal["requeue", "mark"] = Field(
        "requeue", description="a bulletin cut by an emergency: requeue (plays again after) or mark (not again)")
    wake_ahead_s: float = Field(1.5, ge=0.2, le=30, description="open outputs this long before airtime")
    realtime_priority: int = Field(10, ge=0, le=99, description="SCHED_RR priority of the audio threads (0 = off)")
    chime_file: Optional[Path] = Field(None, description="WAV played as the chime (a built-in two-tone if unset)")
    asrun_keep_days: int = Field(365, ge=1, description="days the as-run log is kept locally")
    tts: TtsConfig = Field(TtsConfig(), description="speech engines and levelling")
    speaker_checks: SpeakerChecks = Field(SpeakerChecks(), description="checks of the zones' loudspeakers")

    @field_validator("zones")
    @classmethod
    def _zone_names(cls, v: dict[str, Zone]) -> dict[str, Zone]:
        for name in v:
            if not re.match(ZONE_NAME, name):
                raise ValueError(f"zone name {name!r} must be 1-32 of A-Z a-z 0-9 _ -")
        return v

    @model_validator(mode="after")
    def _known_defaults(self) -> BroadcastConfig:
        for name in self.default_zones or []:
            if name not in self.zones:
                raise ValueError(f"default_zones names unknown zone {name!r}")
        return self

    def zones_for(self, wanted: list[str] | None) -> list[str]:
        if wanted:
            return list(wanted)
        return list(self.default_zones or self.zones)
