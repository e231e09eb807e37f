"""Metrics and logs: what operations can see."""

from __future__ import annotations

import io
import json
import logging
import logging.config

import httpx
from prometheus_client.parser import text_string_to_metric_families

from parley.logs import JsonFormatter, logging_config, request_id
from tests.clients import Gateway
from tests.world import World


async def scrape(gateway: Gateway) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with httpx.AsyncClient(base_url=gateway.server.http_url) as http:
        response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


async def test_metrics_parse_and_move_when_messages_flow(gateway: Gateway, world: World) -> None:
    conversation = await world.open()
    before = await scrape(gateway)
    async with gateway.connect(world.john.id) as john, gateway.connect(world.mary.id) as mary:
        during = await scrape(gateway)
        for n in range(5):
            await john.ok(
                "message.send", conversation_id=conversation.id, client_msg_id=f"m{n}", content="x"
            )
            await mary.event("message.new")
        await john.error("message.send", conversation_id=999_999, client_msg_id="z", content="x")
        after = await scrape(gateway)

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert during[("parley_connections", ())] - before.get(("parley_connections", ()), 0) == 2
    assert delta("parley_frames_in_total", type="message.send") == 6
    assert delta("parley_frames_out_total", type="message.new") >= 5
    assert delta("parley_frames_out_total", type="unread") >= 5
    assert delta("parley_errors_total", code="not_found") == 1
    assert delta("parley_send_seconds_count") == 6
    assert delta("parley_broker_published_total") >= 10
    assert delta("parley_broker_received_total") >= 10
    assert ("parley_db_pool_connections", (("state", "in_use"),)) in after


def test_log_lines_are_json_with_the_request_id() -> None:
    formatter = JsonFormatter()
    record = logging.LogRecord("parley", logging.WARNING, __file__, 1, "db down: %s", ("x",), None)
    token = request_id.set("9f2c41d07a1b3e55:7")
    try:
        line = json.loads(formatter.format(record))
    finally:
        request_id.reset(token)
    assert line["message"] == "db down: x"
    assert (line["level"], line["request_id"]) == ("warning", "9f2c41d07a1b3e55:7")
    assert "request_id" not in json.loads(formatter.format(record))


def test_the_log_config_drops_uvicorns_per_socket_lines_and_keeps_the_rest() -> None:
    stream = io.StringIO()
    config = logging_config("info", "json")
    config["handlers"]["default"]["stream"] = stream
    names = ("", "uvicorn", "uvicorn.error", "uvicorn.access")
    saved = [
        (logger, logger.handlers[:], logger.level, logger.propagate)
        for logger in map(logging.getLogger, names)
    ]
    try:
        logging.config.dictConfig(config)
        uvicorn = logging.getLogger("uvicorn.error")
        uvicorn.info('%s - "WebSocket %s" [accepted]', "127.0.0.1:5000", "/ws")
        uvicorn.info("connection open")
        uvicorn.info("connection closed")
        uvicorn.warning("connection open")  # a warning always passes
        uvicorn.info("Application startup complete.")
        try:
            b"\xff".decode()
        except UnicodeDecodeError:  # a client's invalid text frame: its close code says so
            uvicorn.exception("Invalid UTF-8 sequence received from client.")
        uvicorn.error("Exception in ASGI application\n")  # a real error always passes
        logging.getLogger("parley.gateway").info("connection open")  # not uvicorn's
    finally:
        for logger, handlers, level, propagate in saved:
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.propagate = propagate
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(line["logger"], line["level"], line["message"]) for line in lines] == [
        ("uvicorn.error", "warning", "connection open"),
        ("uvicorn.error", "info", "Application startup complete."),
        ("uvicorn.error", "error", "Exception in ASGI application\n"),
        ("parley.gateway", "info", "connection open"),
    ]
