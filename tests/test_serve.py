"""The uvicorn names parley/serve.py relies on, checked against the installed uvicorn.

They are not uvicorn's public API; when a test here fails after an upgrade, serve.py's
docstring says what to do. (The graceful shutdown and the supervisor themselves are
exercised end to end by tests/test_cli.py and tests/test_scale_out.py.)
"""

from __future__ import annotations

import inspect
import re
import socket

import uvicorn
from uvicorn import _subprocess

from parley.serve import ParleyServer


def test_get_subprocess_still_takes_a_config_a_target_and_sockets() -> None:
    parameters = list(inspect.signature(_subprocess.get_subprocess).parameters)
    assert parameters == ["config", "target", "sockets"]


def test_shutdown_still_takes_the_sockets_and_closes_self_servers_first() -> None:
    shutdown = inspect.signature(uvicorn.Server.shutdown)
    assert list(shutdown.parameters) == ["self", "sockets"]
    assert list(inspect.signature(ParleyServer.shutdown).parameters) == ["self", "sockets"]
    startup = inspect.getsource(uvicorn.Server.startup)
    assert re.search(r"self\.servers(: [^=]+)? = ", startup), "startup fills self.servers"
    assert "for server in self.servers" in inspect.getsource(uvicorn.Server.shutdown)


def test_config_still_binds_the_socket_the_workers_share() -> None:
    config = uvicorn.Config(app=lambda scope, receive, send: None, host="127.0.0.1", port=0)
    sock = config.bind_socket()
    try:
        assert isinstance(sock, socket.socket)
        assert sock.getsockname()[0] == "127.0.0.1"
    finally:
        sock.close()


def test_startup_still_logs_where_it_listens_through_log_started_message() -> None:
    # serve() binds the socket itself (a port in use is found before migrating), so uvicorn
    # no longer says where it listens; ParleyServer.startup asks it to.
    parameters = inspect.signature(uvicorn.Server._log_started_message).parameters
    assert list(parameters) == ["self", "listeners"]
