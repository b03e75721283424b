"""A local Ray cluster for tests: loopback addresses only, token auth on, every process it started
ended by pid (never `ray stop`, which would end every Ray on the machine), every wait bounded."""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RAY = str(Path(sys.executable).parent / "ray")


def _procs() -> dict[int, tuple[int, str]]:
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{d}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            ppid = int(Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        out[int(d)] = (ppid, cmd)
    return out


def ray_tree(root: str) -> set[int]:
    """Ray processes whose command line names our own temp dir, and their children (workers)."""
    ps = _procs()
    mine, p = set(), os.getpid()
    while p > 1 and p in ps:  # never this process or its parents
        mine.add(p)
        p = ps[p][0]
    pids = {p for p, (_, c) in ps.items() if root in c} - mine
    while True:
        more = {p for p, (pp, _) in ps.items() if pp in pids} - pids - mine
        if not more:
            return pids
        pids |= more


def end_ray(root: str) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = ray_tree(root)
        for p in pids:
            try:
                os.kill(p, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 10
        while pids and time.monotonic() < deadline:
            time.sleep(0.2)
            pids = ray_tree(root)
        if not pids:
            return


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def ray_env(root: str) -> dict:
    """Environment for Ray processes of one test: token auth with a token file in `root`."""
    token = Path(root) / "token"
    if not token.exists():
        token.write_text(secrets.token_hex(32) + "\n")
    return dict(os.environ, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token), RAY_TMPDIR=root,
                RAY_USAGE_STATS_ENABLED="0", PYTHONUNBUFFERED="1",
                RAY_worker_niceness="0")  # Ray's default nice 15 starves its workers on a busy machine


class LocalCluster:
    """`ray start --head` on 127.0.0.2 (+ `nodes` more on 127.0.0.3...), each with `cpus` CPUs."""

    def __init__(self, nodes: int = 0, cpus: int = 1, head_cpus: int | None = None):
        self.root = tempfile.mkdtemp(prefix="fvqr", dir="/tmp")  # short: Ray's unix socket paths
        self.env = ray_env(self.root)
        self.port = free_port("127.0.0.2")
        self.address = f"127.0.0.2:{self.port}"
        self.nodes, self.cpus = nodes, cpus
        self.head_cpus = cpus if head_cpus is None else head_cpus

    def _start(self, *args: str) -> None:
        r = subprocess.run([RAY, "start", *args, "--temp-dir", self.root, "--disable-usage-stats"],
                           capture_output=True, text=True, env=self.env, timeout=120)
        if r.returncode != 0:
            raise RuntimeError(f"ray start {' '.join(args)} failed: {r.stderr[-3000:]}")

    def __enter__(self) -> "LocalCluster":
        try:
            self._start("--head", "--node-ip-address", "127.0.0.2", "--port", str(self.port),
                        "--include-dashboard=false", "--num-cpus", str(self.head_cpus))
            for k in range(self.nodes):
                self._start("--address", self.address, "--node-ip-address", f"127.0.0.{3 + k}",
                            "--num-cpus", str(self.cpus))
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        end_ray(self.root)
        shutil.rmtree(self.root, ignore_errors=True)
