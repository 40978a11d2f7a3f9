"""Session fixtures that start real servers on free loopback ports (filled in by the harness)."""
