"""Helpers shared by the tests: real servers, waiting on conditions, a recording context."""
