"""Network family: per-link probes, dual-WAN failover, SNMP polling of network gear, LAN inventory."""
