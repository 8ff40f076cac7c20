"""Which driver owns which config section; modules load only when their section is used."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DriverSpec:
    section: str
    config: str  # "module:Class" of the pydantic section model (must import cheaply)
    driver: str  # "module:Class" of the driver (may import heavy libraries)
    cli: str | None = None  # module with add_commands(subparsers) for `commune-agent ...`


SPECS: tuple[DriverSpec, ...] = (
    DriverSpec("health", "agent.health:HealthConfig", "agent.health:HealthDriver"),
    DriverSpec("network", "drivers.network.config:NetworkConfig", "drivers.network.driver:NetworkDriver",
               "drivers.network.cli"),
    DriverSpec("cameras", "drivers.camera.config:CamerasConfig", "drivers.camera.driver:CameraDriver",
               "drivers.camera.cli"),
    DriverSpec("broadcast", "drivers.broadcast.config:BroadcastConfig", "drivers.broadcast.driver:BroadcastDriver",
               "drivers.broadcast.cli"),
    DriverSpec("sensors", "drivers.sensors.config:SensorsConfig", "drivers.sensors.driver:SensorsDriver",
               "drivers.sensors.cli"),
    DriverSpec("console", "drivers.console.config:ConsoleConfig", "drivers.console.server:ConsoleDriver",
               "drivers.console.cli"),
)


def load_object(ref: str) -> Any:
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)
