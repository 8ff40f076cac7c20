"""Which driver owns which config section, which families it uses, and the name users see for it.

Families meet only at the front door: what one family may use of another is in `drivers/<folder>/api.py`,
the family's face, and `uses` below names the sections whose faces a family imports (tests/test_seams.py
checks both). The face is a module of its own rather than the package's `__init__.py` because Python runs
`__init__.py` for every import of a submodule: the registry's cheap config models, the CLI and the camera's
worker processes would all pay for the face (and what it imports) on each start. A face imports nothing
heavy (numpy, cv2, pyaudio, croniter) at import time; such parts load on first use.

Labels live here, keyed by section, not in the faces: the console names every driver it shows — the core's
`host` and families it does not use included — and must not import a family to learn its name.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Label:
    """A section's name as officials read it: Vietnamese first, English."""

    vi: str
    en: str


@dataclass(frozen=True)
class DriverSpec:
    section: str
    config: str  # "module:Class" of the pydantic section model (must import cheaply)
    driver: str  # "module:Class" of the driver (may import heavy libraries)
    cli: str | None = None  # module with add_commands(subparsers) for `commune-agent ...`
    uses: tuple[str, ...] = ()  # sections whose faces (drivers.<folder>.api) this family imports
    label: Label | None = None  # None: users see the section name (tests/test_seams.py requires one in SPECS)
    commands: str | None = None  # "module:NAME" of {command: argument schema} (cheap; agent/command_args.py)

    @property
    def folder(self) -> str | None:
        """The family's folder under drivers/ (None for a core driver that lives in agent/)."""
        parts = self.driver.partition(":")[0].split(".")
        return parts[1] if parts[0] == "drivers" else None


SPECS: tuple[DriverSpec, ...] = (
    DriverSpec("host", "agent.host:HostConfig", "agent.host:HostDriver",
               label=Label("Máy chủ", "Host computer")),
    DriverSpec("network", "drivers.network.config:NetworkConfig", "drivers.network.driver:NetworkDriver",
               "drivers.network.cli", label=Label("Mạng", "Network"),
               commands="drivers.network.command_args:COMMANDS"),
    DriverSpec("cameras", "drivers.camera.config:CamerasConfig", "drivers.camera.driver:CameraDriver",
               "drivers.camera.cli", label=Label("Camera", "Cameras"),
               commands="drivers.camera.command_args:COMMANDS"),
    DriverSpec("broadcast", "drivers.broadcast.config:BroadcastConfig", "drivers.broadcast.driver:BroadcastDriver",
               "drivers.broadcast.cli", label=Label("Loa truyền thanh", "Loudspeakers"),
               commands="drivers.broadcast.command_args:COMMANDS"),
    DriverSpec("sensors", "drivers.sensors.config:SensorsConfig", "drivers.sensors.driver:SensorsDriver",
               "drivers.sensors.cli", label=Label("Cảm biến", "Sensors"),
               commands="drivers.sensors.command_args:COMMANDS"),
    DriverSpec("console", "drivers.console.config:ConsoleConfig", "drivers.console.driver:ConsoleDriver",
               "drivers.console.cli", uses=("automations", "broadcast", "cameras", "network", "sensors", "signboard"),
               label=Label("Trang quản lý", "Console")),
    DriverSpec("automations", "drivers.automations.config:AutomationsConfig",
               "drivers.automations.driver:AutomationsDriver", "drivers.automations.cli",
               uses=("broadcast", "cameras", "network", "sensors", "signboard"),
               label=Label("Tự động hoá", "Automations"),
               commands="drivers.automations.command_args:COMMANDS"),
    DriverSpec("signboard", "drivers.signboard.config:SignboardConfig", "drivers.signboard.driver:SignboardDriver",
               "drivers.signboard.cli", uses=("broadcast",), label=Label("Bảng tin điện tử", "Signboards"),
               commands="drivers.signboard.command_args:COMMANDS"),
)

# what emits events besides the drivers (Event.source): the core itself and its uplink to the COC
CORE_LABELS: dict[str, Label] = {"agent": Label("Tác tử", "Agent"), "uplink": Label("Kết nối trung tâm", "COC uplink")}
_LABELS: dict[str, Label] = {**CORE_LABELS, **{s.section: s.label for s in SPECS if s.label is not None}}


def label(name: str, lang: str) -> str:
    """The name users see for a section or event source; the code name for one this table does not know."""
    found = _LABELS.get(name)
    if found is None:
        return name
    return found.vi if lang == "vi" else found.en


def load_object(ref: str) -> Any:
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)
