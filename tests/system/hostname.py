"""``[core] hostname_callable`` of the system tests' cluster: each component reports its own name (``worker-a``,
``triggerer-b``, ...) as its host, so a test can tell from the REST API which worker runs a task and which
triggerer holds a trigger, and kill that one. Imported by the Airflow processes, not by the tests."""

from __future__ import annotations

import os
import socket

COMPONENT_VAR = "FT_SYSTEM_COMPONENT"


def component_hostname() -> str:
    return os.environ.get(COMPONENT_VAR) or socket.getfqdn()
