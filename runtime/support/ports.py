"""A loopback port for a server that a process starts later (a coordinator's /metrics, the
local catalog, the private redis-server), chosen below the kernel's ephemeral range.

Guaranteed: the port was free when chosen, and the kernel never hands it out as the local port
of an outgoing connection (those come from ``net.ipv4.ip_local_port_range``), so a fleet's
thousands of client connections cannot take it before its server binds — a port picked by
binding port 0 can be taken that way, and was, in a 2,000-worker run. Not guaranteed: another
program may bind the same port on purpose in between; the server then fails to start, saying
which port.
"""
from __future__ import annotations

import random
import socket
from pathlib import Path

RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
#: Below this are the well-known and commonly configured ports.
LOWEST = 10000
ATTEMPTS = 200


def ephemeral_start() -> int:
    """The lowest port the kernel may give an outgoing connection (32768 where unreadable)."""
    try:
        return int(RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A loopback TCP port nothing listens on, below the ephemeral range where it has room."""
    top = ephemeral_start()
    if top - LOWEST >= ATTEMPTS:
        for port in random.sample(range(LOWEST, top), ATTEMPTS):
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    with socket.socket() as probe:  # no room below it: any free port
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
