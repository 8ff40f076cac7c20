"""Hardware families; each folder is self-contained (config, driver, cli, README)."""
