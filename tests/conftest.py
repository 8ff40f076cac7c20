"""Fixtures with real servers; each test gets its own broker on a free loopback port."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tests.support.mosquitto import Broker, Recorder


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path / "mosquitto").start()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
def recorder(broker: Broker) -> Iterator[Recorder]:
    r = Recorder(broker.port).start()
    try:
        yield r
    finally:
        r.stop()
