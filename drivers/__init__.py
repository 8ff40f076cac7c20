"""Hardware families, one folder each (config, driver, cli, README); another family uses one only through its
face, `api.py`, and only if registry.py declares it."""
