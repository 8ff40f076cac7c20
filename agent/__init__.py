"""commune-agent: the edge daemon of a commune office (UBND xã)."""

__version__ = "0.1.0"
