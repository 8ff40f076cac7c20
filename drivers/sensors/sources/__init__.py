"""Where readings come from: a local MQTT broker, a serial line, a Modbus RTU bus; each in its own thread."""
