"""Fixtures with real servers; each test gets its own broker on a free loopback port.

Tests are marked by what they start, so the quick part runs alone (`-m "not heavy"`): `browser`
(Chromium), `agent` (a real agent process), `netns` (network namespaces), `slow` (long scenarios, marked
by hand) and `index` (asks the package index). A module's marks come from the harnesses it uses, so a new
test file is marked without anyone remembering to."""

from __future__ import annotations

import gc
from pathlib import Path
from types import ModuleType
from typing import Iterator

import hypothesis  # noqa: F401  imported (and assertion-rewritten) now, not by its plugin's summary at the end
import pytest

from tests.support.mosquitto import Broker, Recorder

HEAVY = ("browser", "agent", "netns", "slow", "index")
# harness module -> the mark every test module using it gets
HARNESS_MARKS = {
    "tests.support.agentproc": "agent",
    "tests.support.unitloop": "agent",
    "tests.support.releasebox": "agent",
    "tests.console.harness": "agent",
    "tests.network.netlab": "netns",
    "tests.network.nsdriver": "netns",
    "tests.network.scenarios": "netns",
    "tests.camera.onvif_session": "netns",
}
FIXTURE_MARKS = {"browser": "browser", "agent": "agent"}


def _harnesses(module: ModuleType) -> set[str]:
    """Names of the harness modules a test module uses, directly or through a name it imported."""
    used = set()
    for value in vars(module).values():
        name = value.__name__ if isinstance(value, ModuleType) else getattr(value, "__module__", None)
        if name in HARNESS_MARKS:
            used.add(name)
    return used


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Garbage finalized here, not inside a later ast.parse: on 3.11 a finalizer whose error is formatted with
    carets parses too, re-entering the AST constructor, and the outer parse dies with "recursion depth mismatch"
    (CPython gh-106905)."""
    gc.collect()


@pytest.hookimpl(tryfirst=True)  # before xdist's own, which reads the xdist_group marks added here
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    seen: dict[str, set[str]] = {}
    for item in items:
        module = getattr(item, "module", None)
        if module is None:
            continue
        marks = seen.get(module.__name__)
        if marks is None:
            marks = seen[module.__name__] = {HARNESS_MARKS[h] for h in _harnesses(module)}
        own = set(marks) | {FIXTURE_MARKS[f] for f in getattr(item, "fixturenames", ()) if f in FIXTURE_MARKS}
        for name in own:
            item.add_marker(name)
        if own or any(item.get_closest_marker(name) is not None for name in HEAVY):
            item.add_marker("heavy")
        if item.get_closest_marker("xdist_group") is None and _shares_a_module_fixture(item):
            # one worker runs the module, so its agent, browser or lab starts once, not once per worker
            item.add_marker(pytest.mark.xdist_group(module.__name__))
    _longest_first(items)


def _longest_first(items: list[pytest.Item]) -> None:
    """Whole modules in the order their runs are likely to be long — network labs, then modules one worker runs
    with real processes, then other real processes, then the rest — so xdist, which hands out work in this
    order, never leaves a long module to start near the end and run alone."""
    def weight(item: pytest.Item) -> int:
        if item.get_closest_marker("netns") is not None:
            return 0
        if item.get_closest_marker("heavy") is not None:
            return 1 if item.get_closest_marker("xdist_group") is not None else 2
        return 3

    by_module: dict[str, int] = {}
    for item in items:
        name = item.nodeid.split("::", 1)[0]
        by_module[name] = min(by_module.get(name, 3), weight(item))
    items.sort(key=lambda item: by_module[item.nodeid.split("::", 1)[0]])  # stable: a module's own order kept


def _shares_a_module_fixture(item: pytest.Item) -> bool:
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return False
    return any(d.scope in ("module", "package") for defs in info.name2fixturedefs.values() for d in defs)


@pytest.fixture(scope="module")
def coc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Broker, Recorder]]:
    """A broker for a module's one agent, and the COC's view of its events."""
    broker = Broker(tmp_path_factory.mktemp("mq")).start()
    rec = Recorder(broker.port, topics=("commune/v1/t1/event/#",)).start()
    try:
        yield broker, rec
    finally:
        rec.stop()
        broker.stop()


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
