"""The console tests' Chromium, for the confirm flow in the console."""

from tests.console.conftest import browser  # noqa: F401 (a fixture, found by name)
