"""`berth dev` and `berth serve`: load a project and serve it with uvicorn."""

from __future__ import annotations

import argparse
import fcntl
import json
import logging
import os
import socket
import sys
from pathlib import Path
from typing import IO, Any

from berth.core import errors
from berth.settings import Settings


def _default_config() -> Path:
    for candidate in (Path("langgraph.json"), Path("examples/langgraph.json")):
        if candidate.is_file():
            return candidate
    return Path("langgraph.json")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="berth", description="A durable LangGraph Agent Server.")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("dev", "serve a project for development (embedded store by default)"),
        ("serve", "serve a project in production"),
    ):
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("--config", type=Path, default=None, help="path to langgraph.json")
        sub.add_argument("--host", default="127.0.0.1")
        sub.add_argument("--port", type=int, default=2024)
        sub.add_argument("--data-dir", type=Path, default=Path(".berth"))
        sub.add_argument(
            "--workers",
            type=int,
            default=None,
            help="runs executed at once by this process (0: serve the API only)",
        )
        sub.add_argument("--no-browser", action="store_true", help="accepted for compatibility")
        if name == "dev":
            sub.add_argument(
                "--reload",
                action="store_true",
                help="restart the server when a file of the project changes",
            )
    return parser


def _fail(message: str) -> int:
    print(f"berth: {message}", file=sys.stderr)
    return 1


def _lock(database: Path) -> IO[str]:
    """One server per SQLite database: the embedded mode is one process by design (its
    broker lives in memory, and storage may keep what only this process can change)."""
    database.parent.mkdir(parents=True, exist_ok=True)
    handle = open(database.with_name(database.name + ".lock"), "w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise errors.ConfigError(
            f"{database} is in use by another berth server (embedded mode serves one process)"
        ) from None
    return handle


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = Settings.from_env(
        config_path=args.config or _default_config(),
        host=args.host,
        port=args.port,
        data_dir=args.data_dir,
        concurrency=args.workers,
    )
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        if settings.database_url.startswith("sqlite:///"):
            database = Path(settings.database_url.removeprefix("sqlite:///"))
            lock = _lock(database)  # noqa: F841 - released at exit
        from berth.api.app import create_app
        from berth.graphs import GraphRegistry
        from berth.project import load

        project = load(settings.config_path)
        for key, value in project.env.items():
            os.environ.setdefault(key, value)
        registry = GraphRegistry.load(project)
        app = create_app(settings, registry)
    except errors.BerthError as exc:
        return _fail(exc.message)
    try:
        sock = socket.socket(socket.AF_INET6 if ":" in settings.host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((settings.host, settings.port))
    except OSError as exc:
        return _fail(f"cannot listen on {settings.host}:{settings.port}: {exc.strerror}")

    import uvicorn

    where = "PostgreSQL" if settings.database_uri else f"SQLite in {settings.data_dir}"
    if settings.redis_uri:
        where += " + Redis"
    print(
        f"Berth listening on http://{settings.host}:{settings.port} "
        f"(graphs: {', '.join(registry.ids)}; state: {where})",
        flush=True,
    )
    options: dict[str, Any] = {
        "log_level": "warning",
        "access_log": False,
        "lifespan": "on",
        "timeout_graceful_shutdown": 10,
    }
    if getattr(args, "reload", False):
        from uvicorn.supervisors import ChangeReload

        # The app is rebuilt in a fresh child process after each change; this process
        # keeps the socket and the data directory's lock.
        os.environ[_RELOAD_SETTINGS] = json.dumps(
            {
                "config_path": str(settings.config_path.resolve()),
                "data_dir": str(settings.data_dir.resolve()),
                "host": settings.host,
                "port": settings.port,
                "concurrency": settings.concurrency,
            }
        )
        config = uvicorn.Config(
            "berth.cli:reloaded_app",
            factory=True,
            reload=True,
            reload_dirs=[str(settings.config_path.resolve().parent)],
            **options,
        )
        ChangeReload(config, target=uvicorn.Server(config).run, sockets=[sock]).run()
        return 0
    server = uvicorn.Server(uvicorn.Config(app, **options))
    server.run(sockets=[sock])
    return 0 if not server.should_exit or server.started else 1


#: settings handed from `berth dev --reload` to the app in each reloaded child
_RELOAD_SETTINGS = "BERTH_RELOAD_SETTINGS"


def reloaded_app() -> Any:
    """The app of a `berth dev --reload` child process, with the parent's settings."""
    from berth.api.app import create_app

    given = json.loads(os.environ[_RELOAD_SETTINGS])
    settings = Settings.from_env(
        config_path=Path(given["config_path"]),
        data_dir=Path(given["data_dir"]),
        host=given["host"],
        port=given["port"],
        concurrency=given["concurrency"],
    )
    return create_app(settings)


if __name__ == "__main__":
    sys.exit(main())
