"""What the benchmark measures: a real Berth server process, or the same graphs in-process.

Both targets expose the same coroutine API, so ``run.py`` drives them through identical
concurrency patterns and the only difference left is the server itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph_sdk import get_client

GRAPHS = Path(__file__).parent / "graphs"
CONFIG = GRAPHS / "langgraph.json"
ECHO_INPUT: dict[str, Any] = {"messages": [{"role": "user", "content": "hi"}]}
CHAIN_INPUT: dict[str, Any] = {"count": 0}
_TICK = os.sysconf("SC_CLK_TCK")


class RunFailed(Exception):
    """A run finished, but not the way the deterministic graph always finishes."""


def check_echo(result: Any) -> None:
    try:
        last = result["messages"][-1]
        content = last["content"] if isinstance(last, dict) else last.content
    except (KeyError, IndexError, TypeError, AttributeError):
        raise RunFailed(f"echo returned {str(result)[:300]}") from None
    if content != "echo: hi":
        raise RunFailed(f"echo replied {content!r}")


def check_chain(result: Any) -> None:
    count = result.get("count") if isinstance(result, dict) else None
    if count != 10:
        raise RunFailed(f"chain10 returned {str(result)[:300]}")


# --- in-process floor -------------------------------------------------------


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_graph_{name}", GRAPHS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # get_type_hints() finds the State annotations through sys.modules
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class FloorTarget:
    """The bench graphs compiled with a LangGraph checkpointer, one thread_id per call."""

    def __init__(self, name: str, saver: BaseCheckpointSaver[Any]) -> None:
        self.name = name
        self.echo_graph = _load("echo").builder.compile(checkpointer=saver)
        self.chain_graph = _load("chain10").builder.compile(checkpointer=saver)

    @staticmethod
    def _config() -> dict[str, Any]:
        return {"configurable": {"thread_id": str(uuid.uuid4())}}

    async def make_threads(self, n: int) -> list[str | None]:
        return [None] * n  # every call already gets a fresh thread_id

    async def echo(self, thread_id: str | None = None) -> None:
        check_echo(await self.echo_graph.ainvoke(ECHO_INPUT, self._config()))

    async def chain10(self) -> None:
        check_chain(await self.chain_graph.ainvoke(CHAIN_INPUT, self._config()))

    async def stream(self) -> tuple[float | None, float]:
        """Seconds to the first `values` chunk; the floor has no metadata event."""
        start = time.perf_counter()
        first: float | None = None
        async for _chunk in self.echo_graph.astream(ECHO_INPUT, self._config()):
            if first is None:
                first = time.perf_counter() - start
        assert first is not None
        return None, first

    async def burst(self, n: int, concurrency: int) -> dict[str, Any]:
        """`n` runs with at most `concurrency` at once: what the server's worker pool allows."""
        gate = asyncio.Semaphore(concurrency)
        failures: list[str] = []

        async def one() -> None:
            async with gate:
                try:
                    await self.echo()
                except Exception as exc:  # counted and reported below
                    failures.append(repr(exc))

        start = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(n)))
        elapsed = time.perf_counter() - start
        return {
            "elapsed_s": elapsed,
            "ok": n - len(failures),
            "failed": failures[:3],
            "failed_count": len(failures),
        }

    def cpu_seconds(self) -> float:
        times = os.times()
        return times.user + times.system

    def rss_mib(self) -> float | None:
        return _rss_mib([os.getpid()])


@contextlib.asynccontextmanager
async def floor(kind: str) -> AsyncIterator[FloorTarget]:
    if kind == "memory":
        yield FloorTarget("InMemorySaver", InMemorySaver())
        return
    with tempfile.TemporaryDirectory(prefix="berth-bench-floor-") as tmp:
        async with AsyncSqliteSaver.from_conn_string(str(Path(tmp) / "floor.db")) as saver:
            yield FloorTarget("AsyncSqliteSaver", saver)


# --- the server ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _descendants(pid: int) -> list[int]:
    """`pid` and every process below it: a server may run its work in children."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(parents.get(current, []))
    return found


def _cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            # utime and stime are fields 14 and 15; split after the last ")" because
            # the command name may itself contain spaces or parentheses
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / _TICK


def _rss_mib(pids: list[int]) -> float | None:
    total_kib = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kib += int(line.split()[1])
    return total_kib / 1024 if total_kib else None


class ServerProcess:
    """`python -m berth dev` on a free port with a throwaway data directory."""

    def __init__(self, data_dir: Path, *, database_uri: str, concurrency: int | None) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.log_file = data_dir / "server.log"
        self.env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URI", "REDIS_URI")}
        self.env.update({"PYTHONUNBUFFERED": "1", "LANGSMITH_TRACING": "false"})
        if database_uri:
            self.env["DATABASE_URI"] = database_uri
        if concurrency is not None:
            self.env["N_JOBS_PER_WORKER"] = str(concurrency)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable,
            *("-m", "berth", "dev", "--config", str(CONFIG)),
            *("--host", "127.0.0.1", "--port", str(self.port), "--data-dir", str(self.data_dir)),
        ]
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/ok", timeout=1.0).status_code == 200:
                    return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server not ready after {timeout}s\n{self.log_tail()}")

    def check_alive(self) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(
                f"server exited with code {self.process.returncode}\n{self.log_tail()}"
            )

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def log_problems(self) -> list[str]:
        """Server log lines that look like errors: tracebacks, ERROR, 500s."""
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return []
        keys = ("Traceback", "ERROR", "Error", " 500", "CRITICAL")
        return [line for line in text.splitlines() if any(key in line for key in keys)]

    def pids(self) -> list[int]:
        assert self.process is not None
        return _descendants(self.process.pid)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


class ServerTarget:
    """One official async SDK client (one pooled httpx client) against `server`."""

    name = "server"

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.client = get_client(url=server.url, api_key=None)

    async def aclose(self) -> None:
        await self.client.aclose()

    async def make_threads(self, n: int) -> list[str | None]:
        return [(await self.client.threads.create())["thread_id"] for _ in range(n)]

    async def echo(self, thread_id: str | None = None) -> None:
        check_echo(await self.client.runs.wait(thread_id, "echo", input=ECHO_INPUT))

    async def chain10(self) -> None:
        check_chain(await self.client.runs.wait(None, "chain10", input=CHAIN_INPUT))

    async def stream(self) -> tuple[float | None, float]:
        """Seconds to the `metadata` event and to the first event after it."""
        start = time.perf_counter()
        metadata: float | None = None
        first: float | None = None
        async for part in self.client.runs.stream(None, "echo", input=ECHO_INPUT):
            now = time.perf_counter() - start
            if part.event == "error":
                raise RunFailed(f"stream error event: {part.data}")
            if part.event == "metadata":
                metadata = now if metadata is None else metadata
            elif first is None:
                first = now
        if first is None:
            raise RunFailed("stream ended without a non-metadata event")
        return metadata, first

    async def burst(self, n: int, concurrency: int) -> dict[str, Any]:
        """Create `n` background runs as fast as possible, then watch them finish.

        Each run gets its own thread, which is `busy` while the run is pending or
        running: the drain is over when no thread is busy. That takes one request per
        poll, not one per run, so the watching costs the shared CPUs little. Every
        run's status is checked afterwards, outside the timing.

        `on_completion="keep"`: the default for a stateless run deletes its thread
        (and so the run) when it ends, leaving nothing to confirm `success` against.
        """
        gate = asyncio.Semaphore(concurrency)
        failures: list[str] = []

        async def create() -> tuple[str, str] | None:
            async with gate:
                try:
                    run = await self.client.runs.create(
                        None, "echo", input=ECHO_INPUT, on_completion="keep"
                    )
                except Exception as exc:  # counted and reported below
                    failures.append(f"create: {exc!r}")
                    return None
                return run["thread_id"], run["run_id"]

        start = time.perf_counter()
        created = [r for r in await asyncio.gather(*(create() for _ in range(n))) if r]
        created_s = time.perf_counter() - start
        polls = 0
        deadline = time.monotonic() + 180
        while True:
            polls += 1
            if await self.client.threads.count(status="busy") == 0:
                break
            if time.monotonic() > deadline:
                failures.append("runs still in flight after 180 s")
                break
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - start
        ok = 0
        for thread_id, run_id in created:
            status = (await self.client.runs.get(thread_id, run_id))["status"]
            if status == "success":
                ok += 1
            else:
                failures.append(f"run {run_id} ended {status}")
        return {
            "elapsed_s": elapsed,
            "create_s": created_s,
            "ok": ok,
            "polls": polls,
            "failed": failures[:3],
            "failed_count": len(failures),
        }

    def cpu_seconds(self) -> float:
        return _cpu_seconds(self.server.pids())

    def rss_mib(self) -> float | None:
        return _rss_mib(self.server.pids())
