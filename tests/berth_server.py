"""Run a real ``berth dev`` process for tests.

Output goes to a log file rather than a pipe: nobody reads a pipe while the
tests run, and a full pipe would block the server.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

GRAPHS_CONFIG = Path(__file__).parent / "graphs" / "langgraph.json"

#: Settings inherited from the developer's shell that would silently turn an
#: embedded server into a distributed one; callers pass them explicitly instead.
_BACKEND_ENV = ("DATABASE_URI", "REDIS_URI")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class BerthServer:
    """One ``python -m berth dev`` process bound to 127.0.0.1.

    The port and data directory are fixed at construction, so ``restart()``
    (or ``kill()`` followed by ``start()``) comes back on the same storage and URL.

    Args:
        data_dir: passed as ``--data-dir``; created if missing.
        config: the ``langgraph.json`` to serve; defaults to the test graphs.
        env: extra environment on top of ``os.environ`` (minus ``DATABASE_URI``
            and ``REDIS_URI``, which must be given here to take effect).
        port: defaults to a free port.
        log_file: the process's stdout and stderr; defaults to ``<data_dir>.log``.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        config: Path = GRAPHS_CONFIG,
        env: Mapping[str, str] | None = None,
        port: int | None = None,
        log_file: Path | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        self.data_dir = data_dir
        self.config = config
        self.env = dict(env or {})
        self.port = port if port is not None else free_port()
        self.log_file = log_file or data_dir.with_name(data_dir.name + ".log")
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "berth",
            "dev",
            "--config",
            str(self.config),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
        ]

    def start(self) -> BerthServer:
        """Start the process and wait until ``GET /ok`` answers 200."""
        if self.running:
            raise RuntimeError(f"Berth server on {self.url} is already running")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k not in _BACKEND_ENV}
        env.update({"PYTHONUNBUFFERED": "1", "LANGSMITH_TRACING": "false"})
        env.update(self.env)
        with self.log_file.open("ab") as log:
            log.write(f"--- start: {' '.join(self.command())}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                self.command(),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Own process group: kill() takes any worker children with it, and
                # a Ctrl-C aimed at pytest does not reach the server first.
                start_new_session=True,
            )
        try:
            self._wait_ready()
        except BaseException:
            self.kill()
            raise
        return self

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.startup_timeout
        last_error = "no response"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"Berth server exited with code {self.process.returncode} "
                    f"before it was ready.\n{self.output()}"
                )
            try:
                response = httpx.get(f"{self.url}/ok", timeout=1.0)
            except httpx.HTTPError as exc:
                last_error = repr(exc)
            else:
                if response.status_code == 200:
                    return
                last_error = f"GET /ok answered {response.status_code}"
            time.sleep(0.1)
        raise RuntimeError(
            f"Berth server on {self.url} not ready after {self.startup_timeout}s "
            f"({last_error}).\n{self.output()}"
        )

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL. Returns the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        return self.kill()

    def kill(self) -> int | None:
        """SIGKILL the whole process group, as a crash would. Returns the exit code."""
        if self.process is None:
            return None
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # the group is already gone
        code = self.process.wait()
        self.process = None
        return code

    def restart(self) -> BerthServer:
        """Graceful stop, then start again on the same port and data directory."""
        self.stop()
        return self.start()

    def output(self, limit: int = 20_000) -> str:
        """The tail of the server's combined stdout and stderr."""
        try:
            text = self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return "(no server output)"
        return text[-limit:]

    def __enter__(self) -> BerthServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
