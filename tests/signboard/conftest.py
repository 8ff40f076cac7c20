"""Fixtures the signboard tests share with the console's: its one Chromium per module."""

from tests.console.conftest import browser  # noqa: F401 (a fixture, found by name)
