"""Farm sensors: MQTT and serial (line protocols, Modbus RTU) ingestion, normalisation, threshold alarms."""
