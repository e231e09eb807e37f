"""`parley serve`: uvicorn with Parley's graceful shutdown, and a supervisor for workers.

uvicorn does not promise every name used here: ``uvicorn._subprocess.get_subprocess``, the
``Server.servers`` list, ``Server.shutdown(sockets)`` and ``Server._log_started_message``.
pyproject.toml bounds uvicorn below the next minor release for that reason, and
tests/test_serve.py checks these names against the installed uvicorn. When that test fails
after a uvicorn upgrade, read the new uvicorn's ``server.py`` and ``_subprocess.py``, adapt
ParleyServer and _supervise to them (or to a public API that replaced them), then move the
bound up to the release tested.

uvicorn's own ``Multiprocess`` cannot run a Server subclass, and its shutdown closes sockets
with 1012 before the replies in flight are sent; hence ParleyServer and _supervise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import tempfile
import threading
from collections.abc import Iterator

import uvicorn
from prometheus_client import multiprocess
from uvicorn._subprocess import get_subprocess

from parley import preflight
from parley.app import uvicorn_options
from parley.config import Settings
from parley.gateway.shared import Gateway
from parley.logs import logging_config
from parley.store.pool import EmbeddedPostgres, ensure_database

log = logging.getLogger("parley")


class ParleyServer(uvicorn.Server):
    """uvicorn, with Parley's graceful shutdown: stop accepting, drain the sockets (each
    finishes its request in flight and closes with 1012), then uvicorn's own shutdown."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        # uvicorn says where it listens only for sockets it bound itself; serve() binds them.
        if sockets is not None and self.started:
            self._log_started_message(sockets)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()  # no new connections while we drain
        for gateway in Gateway.running:
            await gateway.drain(gateway.settings.drain_seconds)
        await super().shutdown(sockets)


def serve(settings: Settings, host: str | None, port: int | None, workers: int | None) -> int:
    """Run Parley under uvicorn until SIGTERM or SIGINT; 2 if the settings cannot work."""
    workers = workers or settings.workers
    if workers > 1 and not settings.redis_url:
        print(
            f"parley: --workers {workers} needs REDIS_URL. With the in-memory broker a message "
            "sent through one worker never reaches sockets held by another. Set "
            "REDIS_URL=redis://host:6379/0, or run one worker.",
            file=sys.stderr,
        )
        return 2
    host, port = host or settings.host, port or settings.port
    # Everything that can be found wrong is found here, before a migration or a seed.
    preflight.check_settings(settings)
    with contextlib.ExitStack() as stack:
        sock = stack.enter_context(preflight.bind(host, port))
        if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            # Each worker writes its metrics here; /metrics sums them. Set before the
            # workers import prometheus_client.
            directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="parley-metrics-"))
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
        if not settings.database_url:
            # Start the embedded Postgres here, once, and hand it to every worker.
            embedded = EmbeddedPostgres(settings.pgdata)
            admin_dsn = embedded.start()
            stack.callback(embedded.stop)
            os.environ["DATABASE_URL"] = asyncio.run(ensure_database(admin_dsn, "parley"))
        else:
            asyncio.run(preflight.check_database(settings.database_url))
        config = uvicorn.Config(
            "parley.app:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level=settings.log_level,
            log_config=logging_config(settings.log_level, settings.log_format),
            timeout_graceful_shutdown=round(settings.drain_seconds) + 5,
            **uvicorn_options(settings),
        )
        server = ParleyServer(config)
        with _deferred_signals() as received:
            if workers > 1:
                _supervise(config, server, workers, received, sock)
            else:
                server.run(sockets=[sock])
    if signal.SIGTERM in received:
        # Die of the signal, as a supervisor expects, but only after the cleanup above.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.raise_signal(signal.SIGTERM)
    # Ctrl-C: a quiet 130, the shell's code for it, once everything has stopped.
    return 130 if signal.SIGINT in received else 0


def _supervise(
    config: uvicorn.Config,
    server: ParleyServer,
    workers: int,
    received: list[int],
    sock: socket.socket,
) -> None:
    """Run ``workers`` copies of ``server`` on one listening socket; restart any that dies;
    on SIGTERM or SIGINT, pass it on (each worker drains) and wait for them to finish."""
    stop = threading.Event()
    metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")

    def on_signal(signum: int, frame: object) -> None:
        received.append(signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    processes = [get_subprocess(config, server.run, [sock]) for _ in range(workers)]
    for process in processes:
        process.start()
    while not stop.wait(0.5):
        for index, process in enumerate(processes):
            if not process.is_alive():
                log.warning(
                    "worker %s exited with %s; starting another", process.pid, process.exitcode
                )
                if metrics_dir and process.pid is not None:
                    multiprocess.mark_process_dead(process.pid, metrics_dir)  # type: ignore[no-untyped-call]
                processes[index] = get_subprocess(config, server.run, [sock])
                processes[index].start()
    for process in processes:
        if process.pid is not None and process.is_alive():
            os.kill(process.pid, signal.SIGTERM)
    for process in processes:
        process.join(config.timeout_graceful_shutdown or 30)
        if process.is_alive():
            process.kill()
            process.join()


@contextlib.contextmanager
def _deferred_signals() -> Iterator[list[int]]:
    """uvicorn re-raises the SIGTERM or SIGINT that stopped it after its graceful shutdown,
    which would end us before the embedded Postgres is stopped (or, for SIGINT, go through
    asyncio's own Ctrl-C handling, whose outcome depends on timing); note it instead, and
    let the caller act on it once everything is stopped."""
    received: list[int] = []
    previous = {
        signum: signal.signal(signum, lambda signum, frame: received.append(signum))
        for signum in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        yield received
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
