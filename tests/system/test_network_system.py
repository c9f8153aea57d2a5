"""The deployment listens on loopback only: every listening TCP socket of a process of the run is bound to 127.0.0.1.

Airflow 3.3's log servers (scheduler, triggerer, Celery worker) bind every interface unless told otherwise; the
cluster starts them with ``--skip-serve-logs`` and binds the API server to 127.0.0.1. The processes of the run are
those of ``scripts/system_services.py`` (its descendants, PostgreSQL and Redis included); their sockets are found
through ``/proc/<pid>/fd`` and ``/proc/net/tcp{,6}``. Skipped unless ``FT_SYSTEM_TESTS=1``.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from scripts.system_services import ROOT_PID_VAR, RUN_TOKEN_VAR, processes_of_run

if TYPE_CHECKING:
    from tests.system.harness import AirflowCluster

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(os.environ.get("FT_SYSTEM_TESTS") != "1", reason="system test: set FT_SYSTEM_TESTS=1 to run"),
]

LISTEN = "0A"


def listening_sockets() -> dict[str, tuple[str, int]]:
    """Every listening TCP socket of the machine: its address and port by socket inode."""
    found = {}
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != LISTEN:
                continue
            address, port = fields[1].split(":")
            packed = bytes.fromhex(address)
            # /proc writes each 32-bit word of the address in the host's byte order.
            words = struct.unpack(f"<{len(packed) // 4}I", packed)
            host = socket.inet_ntop(family, struct.pack(f">{len(words)}I", *words))
            found[fields[9]] = (host, int(port, 16))
    return found


def is_loopback(host: str) -> bool:
    return ipaddress.ip_address(host).is_loopback


def sockets_of(pid: int) -> set[str]:
    inodes = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    except OSError:
        pass
    return inodes


@pytest.mark.scenario(
    "9. Loopback only",
    "every listening TCP socket of every process of the run (Airflow, emulators, PostgreSQL, Redis) looked up in /proc",
)
def test_every_listening_socket_of_the_run_is_on_loopback(cluster: AirflowCluster, scenario_notes: list[str]) -> None:
    listening = listening_sockets()
    processes = processes_of_run(int(os.environ[ROOT_PID_VAR]), os.environ[RUN_TOKEN_VAR])
    bound = {(pid, listening[inode]) for pid in processes for inode in sockets_of(pid) if inode in listening}
    addresses = {address for _, address in bound}
    assert ("127.0.0.1", cluster.api_port) in addresses, "the API server's socket was not found: the search is blind"
    exposed = {f"{host}:{port} ({processes[pid][:80]})" for pid, (host, port) in bound if not is_loopback(host)}
    assert not exposed, f"listening beyond loopback: {sorted(exposed)}"
    scenario_notes.append(f"{len(addresses)} listening sockets of {len(processes)} processes, all on 127.0.0.1")
