"""Child processes of the local stack: start in their own session, wait until ready, stop by pid.

Each process logs to a file in the stack's work dir; startup errors quote the tail of that log.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


class StackError(RuntimeError):
    """A piece of the local stack did not start or answer."""


@dataclass
class Process:
    """A started child process and the log file that holds its output."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM the process group, then SIGKILL it if it has not exited within `timeout`."""
        if not self.running():
            return
        _signal_group(self.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            _signal_group(self.pid, signal.SIGKILL)
            self.popen.wait(timeout)


def start_process(
    name: str,
    argv: Sequence[str],
    workdir: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Process:
    """Start `argv` in a new session (so its whole group can be signalled), output to `workdir/<name>.log`."""
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = _unused_path(workdir, name, ".log")
    with log_path.open("wb") as log:
        popen = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
    return Process(name=name, popen=popen, log_path=log_path)


def wait_until_ready(
    process: Process,
    is_ready: Callable[[], bool],
    *,
    timeout: float = 20.0,
    interval: float = 0.05,
) -> None:
    """Poll `is_ready` until it returns True. If the process dies, time runs out or the wait is interrupted,
    stop the process and raise (StackError quotes the tail of its log)."""
    deadline = time.monotonic() + timeout
    try:
        while not is_ready():
            if not process.running():
                raise StackError(
                    f"{process.name} exited with code {process.popen.returncode} before it was ready; "
                    f"log {process.log_path}:\n{process.log_tail()}"
                )
            if time.monotonic() >= deadline:
                raise StackError(
                    f"{process.name} (pid {process.pid}) was not ready after {timeout:.0f} s; "
                    f"log {process.log_path}:\n{process.log_tail()}"
                )
            time.sleep(interval)
    except BaseException:
        process.stop()
        raise


def stop_pid(pid: int, timeout: float = 5.0) -> None:
    """Stop a process group we only know by pid (e.g. read back from a pids file), not a child of ours."""
    if not _signal_group(pid, signal.SIGTERM):
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _group_alive(pid):
            return
        time.sleep(0.05)
    _signal_group(pid, signal.SIGKILL)


def free_port(*, udp_too: bool = False) -> int:
    """A loopback port that is free for TCP now (and for UDP too when `udp_too`, as a DNS server needs both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port: int = tcp.getsockname()[1]
            if not udp_too:
                return port
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                    udp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise StackError("no loopback port free for both TCP and UDP after 50 tries")


def _signal_group(pid: int, sig: signal.Signals) -> bool:
    """Signal the process group led by `pid`; False if it no longer exists."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return False
    return True


def _group_alive(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _unused_path(directory: Path, stem: str, suffix: str) -> Path:
    """`directory/stem.suffix`, or `stem-2.suffix`, ... when a restarted process would overwrite an earlier log."""
    path = directory / f"{stem}{suffix}"
    counter = 2
    while path.exists():
        path = directory / f"{stem}-{counter}{suffix}"
        counter += 1
    return path
