"""Berth benchmark: a real server process against the same graphs run in-process.

    .venv/bin/python bench/run.py [--quick] [--database-uri postgresql://...]

Prints figures for the server and two in-process floors (LangGraph's InMemorySaver
and AsyncSqliteSaver), the ratios server/floor and the issue's ratio goals, and
writes everything to bench/results/latest.json. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from targets import FloorTarget, ServerProcess, ServerTarget, floor

RESULTS = Path(__file__).parent / "results"
#: a single request slower than this counts as a hang
REQUEST_TIMEOUT = 60.0
#: the server's default worker concurrency (N_JOBS_PER_WORKER), used by the burst floor
DEFAULT_WORKERS = 10


@dataclasses.dataclass(frozen=True)
class Sizes:
    warmup: int
    latency: int  # c=1 samples, stateless echo and chain10
    thread_latency: int  # c=1 samples, echo on a fresh thread
    stream: int
    c8_runs: int
    c64_runs: int
    burst: int
    burst_create_concurrency: int = 16


FULL = Sizes(
    warmup=20, latency=200, thread_latency=100, stream=100, c8_runs=400, c64_runs=640, burst=500
)
QUICK = Sizes(
    warmup=5, latency=40, thread_latency=20, stream=20, c8_runs=80, c64_runs=128, burst=500
)

Target = FloorTarget | ServerTarget


class Errors:
    """Failed calls by phase: a benchmark under load must say what broke, not just slow down."""

    def __init__(self) -> None:
        self.by_phase: dict[str, dict[str, Any]] = {}

    def add(self, phase: str, exc: BaseException | str) -> None:
        entry = self.by_phase.setdefault(phase, {"count": 0, "samples": []})
        entry["count"] += 1
        if len(entry["samples"]) < 3:
            text = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
            entry["samples"].append(text[:500])

    def count(self, phase: str) -> int:
        return int(self.by_phase.get(phase, {}).get("count", 0))


def percentile(samples: list[float], p: float) -> float | None:
    """Nearest-rank percentile, in the samples' unit."""
    if not samples:
        return None
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


async def _guarded(call: Awaitable[Any], phase: str, errors: Errors) -> bool:
    try:
        await asyncio.wait_for(call, REQUEST_TIMEOUT)
    except TimeoutError:
        errors.add(phase, f"no answer after {REQUEST_TIMEOUT:.0f} s (hang)")
        return False
    except Exception as exc:  # counted and reported below
        errors.add(phase, exc)
        return False
    return True


Targets = dict[str, Target]
Found = dict[str, dict[str, Any]]


async def interleaved_ms(
    targets: Targets,
    n: int,
    call: Callable[[str, Target, int], Awaitable[Any]],
    phase: str,
    errors: dict[str, Errors],
) -> dict[str, list[float]]:
    """Latency in ms of `n` calls per target at concurrency 1, successes only.

    Sample i is taken on every target before sample i+1, so a burst of background
    load on a shared machine lands on the server and the floors alike.
    """
    samples: dict[str, list[float]] = {key: [] for key in targets}
    for i in range(n):
        for key, target in targets.items():
            start = time.perf_counter()
            if await _guarded(call(key, target, i), phase, errors[key]):
                samples[key].append((time.perf_counter() - start) * 1000)
    return samples


async def throughput(
    total: int, concurrency: int, call: Callable[[], Awaitable[Any]], phase: str, errors: Errors
) -> float:
    """Successful runs per second with `concurrency` calls always in flight."""
    remaining = iter(range(total))
    done = 0

    async def lane() -> None:
        nonlocal done
        for _ in remaining:
            # not `done += await ...`: that reads `done` before the await and loses updates
            ok = await _guarded(call(), phase, errors)
            done += ok

    start = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return done / (time.perf_counter() - start)


async def _warmup(targets: Targets, sizes: Sizes, errors: dict[str, Errors]) -> Found:
    for key, target in targets.items():
        for _ in range(sizes.warmup):
            await _guarded(target.echo(), "warmup", errors[key])
            await _guarded(target.chain10(), "warmup", errors[key])
            await _guarded(target.stream(), "warmup", errors[key])
    return {}


async def _latency(targets: Targets, sizes: Sizes, errors: dict[str, Errors]) -> Found:
    n = sizes.latency
    echo = await interleaved_ms(targets, n, lambda k, t, i: t.echo(), "wait c=1 echo", errors)
    chain = await interleaved_ms(
        targets, n, lambda k, t, i: t.chain10(), "wait c=1 chain10", errors
    )
    threads = {key: await t.make_threads(sizes.thread_latency) for key, t in targets.items()}
    on_thread = await interleaved_ms(
        targets,
        sizes.thread_latency,
        lambda k, t, i: t.echo(threads[k][i]),
        "wait c=1 echo on thread",
        errors,
    )
    found: Found = {}
    for key in targets:
        out = found[key] = {
            "wait_c1_p50_ms": percentile(echo[key], 50),
            "wait_c1_p99_ms": percentile(echo[key], 99),
            "wait_thread_p50_ms": percentile(on_thread[key], 50),
            "wait_thread_p99_ms": percentile(on_thread[key], 99),
            "chain10_p50_ms": percentile(chain[key], 50),
        }
        if out["chain10_p50_ms"] is not None and out["wait_c1_p50_ms"] is not None:
            out["per_step_ms"] = (out["chain10_p50_ms"] - out["wait_c1_p50_ms"]) / 9
    return found


async def _stream(targets: Targets, sizes: Sizes, errors: dict[str, Errors]) -> Found:
    metas: dict[str, list[float]] = {key: [] for key in targets}
    firsts: dict[str, list[float]] = {key: [] for key in targets}

    async def sample(key: str, target: Target, _: int) -> None:
        meta, first = await target.stream()
        firsts[key].append(first * 1000)
        if meta is not None:
            metas[key].append(meta * 1000)

    await interleaved_ms(targets, sizes.stream, sample, "stream", errors)
    return {
        key: {
            "stream_meta_p50_ms": percentile(metas[key], 50),
            "stream_first_p50_ms": percentile(firsts[key], 50),
        }
        for key in targets
    }


async def _throughput(targets: Targets, sizes: Sizes, errors: dict[str, Errors]) -> Found:
    found: Found = {}
    runs = sizes.c8_runs + sizes.c64_runs
    for key, target in targets.items():
        cpu_before, own_before = target.cpu_seconds(), _own_cpu_seconds()
        c8 = await throughput(sizes.c8_runs, 8, target.echo, "throughput c=8", errors[key])
        c64 = await throughput(sizes.c64_runs, 64, target.echo, "throughput c=64", errors[key])
        cpu_ms = (target.cpu_seconds() - cpu_before) * 1000 / runs
        found[key] = {"tput_c8_rps": c8, "tput_c64_rps": c64, "cpu_ms_per_run": cpu_ms}
        if isinstance(target, ServerTarget):
            # The SDK client shares the machine's CPUs with the server: say how much.
            found[key]["client_cpu_ms_per_run"] = (_own_cpu_seconds() - own_before) * 1000 / runs
    return found


def _own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


async def _burst(targets: Targets, sizes: Sizes, errors: dict[str, Errors]) -> Found:
    found: Found = {}
    for key, target in targets.items():
        server = isinstance(target, ServerTarget)
        burst = await target.burst(
            sizes.burst, sizes.burst_create_concurrency if server else DEFAULT_WORKERS
        )
        for failure in burst["failed"]:
            errors[key].add("burst", failure)
        if burst["failed_count"] > len(burst["failed"]):
            extra = burst["failed_count"] - len(burst["failed"])
            errors[key].by_phase["burst"]["count"] += extra
        found[key] = {
            "burst": burst,
            "burst_rps": burst["ok"] / burst["elapsed_s"] if burst["ok"] else None,
            "rss_mib": target.rss_mib(),
        }
    return found


Phase = Callable[[Targets, Sizes, dict[str, Errors]], Awaitable[Found]]


def _phases(sizes: Sizes) -> list[tuple[str, Phase]]:
    return [
        ("warm-up", _warmup),
        (
            f"c=1 latency: {sizes.latency} echo + chain10, {sizes.thread_latency} on threads"
            " (interleaved)",
            _latency,
        ),
        (f"stream: {sizes.stream} (interleaved)", _stream),
        (f"throughput: {sizes.c8_runs} runs at c=8, {sizes.c64_runs} at c=64", _throughput),
        (f"burst: {sizes.burst} background runs", _burst),
    ]


async def measure(
    targets: Targets, sizes: Sizes, check: Callable[[], None]
) -> tuple[Found, dict[str, Errors]]:
    """Run each phase on every target; `check` raises if the server died."""
    results: Found = {key: {"name": t.name} for key, t in targets.items()}
    errors = {key: Errors() for key in targets}
    for label, phase in _phases(sizes):
        check()
        print(f"  {label}", file=sys.stderr, flush=True)
        for key, found in (await phase(targets, sizes, errors)).items():
            results[key] |= found
    check()
    for key in targets:
        results[key]["errors"] = errors[key].by_phase
    return results, errors


# --- report --------------------------------------------------------------------

#: (key, label, unit, better, goal): `better` is "low" for latency-like figures,
#: "high" for rates; the goal is on the ratio server/floor
ROWS: list[tuple[str, str, str, str, float | None]] = [
    ("wait_c1_p50_ms", "runs.wait echo c=1 p50 (stateless)", "ms", "low", 3.5),
    ("wait_c1_p99_ms", "runs.wait echo c=1 p99 (stateless)", "ms", "low", None),
    ("wait_thread_p50_ms", "runs.wait echo c=1 p50 (on a thread)", "ms", "low", None),
    ("wait_thread_p99_ms", "runs.wait echo c=1 p99 (on a thread)", "ms", "low", None),
    ("chain10_p50_ms", "runs.wait chain10 c=1 p50", "ms", "low", None),
    ("per_step_ms", "per-step overhead (chain10-echo)/9", "ms", "low", 1.5),
    ("stream_meta_p50_ms", "stream: first event (metadata) p50", "ms", "low", None),
    ("stream_first_p50_ms", "stream: first data event p50", "ms", "low", 6.8),
    ("tput_c8_rps", "throughput c=8 (stateless wait)", "runs/s", "high", None),
    ("tput_c64_rps", "throughput c=64 (stateless wait)", "runs/s", "high", 0.68),
    ("burst_rps", "500-run background burst drain", "runs/s", "high", 0.82),
    ("cpu_ms_per_run", "CPU per run (throughput phase)", "ms", "low", None),
    ("client_cpu_ms_per_run", "benchmark client CPU per run (same phase)", "ms", "low", None),
    ("rss_mib", "RSS after the runs", "MiB", "low", None),
]


def _ratio(server: float | None, base: float | None) -> float | None:
    if server is None or base is None or base <= 0:
        return None
    return server / base


def _status(ratio: float | None, better: str, goal: float | None) -> str:
    if goal is None:
        return ""
    if ratio is None:
        return "n/a"
    ok = ratio <= goal if better == "low" else ratio >= goal
    return "PASS" if ok else "MISS"


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def report(results: dict[str, dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    server, mem, sql = results["server"], results["floor_memory"], results["floor_sqlite"]
    header = (
        "figure",
        "unit",
        "server",
        "mem floor",
        "srv/mem",
        "sqlite floor",
        "srv/sqlite",
        "goal",
        "vs mem",
        "vs sqlite",
    )
    rows, goals = [header], []
    for key, label, unit, better, goal in ROWS:
        r_mem, r_sql = _ratio(server.get(key), mem.get(key)), _ratio(server.get(key), sql.get(key))
        s_mem, s_sql = _status(r_mem, better, goal), _status(r_sql, better, goal)
        goal_text = "" if goal is None else ("<= " if better == "low" else ">= ") + f"{goal}x"
        if key == "rss_mib":  # the floor's RSS is the whole benchmark process: no ratio
            r_mem = r_sql = None
        rows.append(
            (
                label,
                unit,
                _fmt(server.get(key)),
                _fmt(mem.get(key)),
                _fmt(r_mem) + ("x" if r_mem is not None else ""),
                _fmt(sql.get(key)),
                _fmt(r_sql) + ("x" if r_sql is not None else ""),
                goal_text,
                s_mem,
                s_sql,
            )
        )
        if goal is not None:
            goals.append(
                {
                    "figure": key,
                    "goal": goal_text,
                    "ratio_vs_memory": r_mem,
                    "status_vs_memory": s_mem,
                    "ratio_vs_sqlite": r_sql,
                    "status_vs_sqlite": s_sql,
                }
            )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines), goals


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


async def main_async(args: argparse.Namespace) -> int:
    sizes = QUICK if args.quick else FULL
    started = time.perf_counter()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="berth-bench-") as tmp:
        server = ServerProcess(
            Path(tmp) / "data", database_uri=args.database_uri, concurrency=args.workers
        )
        print(f"  starting berth dev on port {server.port}", file=sys.stderr, flush=True)
        server.start()
        target = ServerTarget(server)
        try:
            async with floor("memory") as mem, floor("sqlite") as sql:
                targets = {"floor_memory": mem, "floor_sqlite": sql, "server": target}
                results, all_errors = await measure(targets, sizes, server.check_alive)
        except RuntimeError as exc:  # the server died mid-run: say what we saw
            print(f"\nSERVER FAILURE: {exc}", file=sys.stderr)
            return 2
        finally:
            await target.aclose()
            log_problems = server.log_problems()
            server.stop()
    load_after = os.getloadavg()

    table, goals = report(results)
    backend = "PostgreSQL" if args.database_uri else "SQLite (embedded)"
    workers = args.workers or DEFAULT_WORKERS
    print()
    print(
        f"Berth benchmark ({'quick' if args.quick else 'full'}; server store: {backend}; "
        f"server workers: {workers}; {os.cpu_count()} CPUs; "
        f"{time.perf_counter() - started:.0f} s)"
    )
    print(f"load average (1 min) before/after: {load_before[0]:.1f}/{load_after[0]:.1f}")
    if max(load_before[0], load_after[0]) > (os.cpu_count() or 1):
        print("WARNING: other processes were busy on this machine; figures are noisy")
    print("ratios are server/floor; goals apply to the ratio (PASS/MISS per floor)")
    print(table)
    problems = {name: e.by_phase for name, e in all_errors.items() if e.by_phase}
    if problems:
        print("\nERRORS:")
        for name, phases in problems.items():
            for phase, entry in phases.items():
                print(f"  {name} / {phase}: {entry['count']} failed, e.g. {entry['samples']}")
    if log_problems:
        print(f"\nserver log: {len(log_problems)} error-looking lines, first: {log_problems[:5]}")
    burst = results["server"]["burst"]
    print(
        f"\nburst detail: {burst['ok']}/{sizes.burst} success; creates took "
        f"{burst['create_s']:.2f} s at concurrency {sizes.burst_create_concurrency}; "
        f"{burst['polls']} threads.count polls"
    )

    RESULTS.mkdir(exist_ok=True)
    payload = {
        "meta": {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "mode": "quick" if args.quick else "full",
            "backend": backend,
            "server_workers": workers,
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "langgraph": _version("langgraph"),
            "langgraph_sdk": _version("langgraph-sdk"),
            "git_commit": _git_commit(),
            "wall_s": time.perf_counter() - started,
            "loadavg_before": load_before,
            "loadavg_after": load_after,
        },
        "sizes": dataclasses.asdict(sizes),
        "results": results,
        "goals": goals,
        "errors": problems,
        "server_log_problems": log_problems[:50],
    }
    (RESULTS / "latest.json").write_text(json.dumps(payload, indent=2, default=str) + "\n")
    print(f"results written to {RESULTS / 'latest.json'}")
    return 1 if problems else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples; under ~40 s")
    parser.add_argument(
        "--database-uri",
        default="",
        help="run the server on this PostgreSQL database instead of SQLite",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="N_JOBS_PER_WORKER for the server (default: the server's 10)",
    )
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
