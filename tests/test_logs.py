"""Structured logs: the access-log line, request ids from the header into the events, the format
chosen at the entry point, and no secret in any line (ledger/logs.py, api/access.py)."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import sys

import pytest
from pythonjsonlogger import msgspec as jsonlog_msgspec

from api import access, keys
from ledger import logs, secrets
from ledger import settings as settings_mod
from projections import tokens as tokens_mod
from tests import credfiles, servers
from tests.applier_support import process_env


def access_lines(caplog: pytest.LogCaptureFixture) -> list[dict]:
    """Every access-log record, as the JSON format writes it."""
    formatter = logs.formatter("json", io.StringIO())
    return [json.loads(formatter.format(r)) for r in caplog.records if r.name == access.log.name]


async def register(client, name: str = "eu-1", **headers: str):
    credfiles.add_anonymous(client.app[keys.SETTINGS], name)
    return await client.put(f"/v1/targets/{name}", json={"labels": {"region": "eu"}, "credentials": name},
                            headers=headers)


async def test_a_write_logs_one_line_and_its_request_id_reaches_the_response_and_the_event(client, db, caplog):
    caplog.set_level(logging.INFO, logger=access.log.name)
    resp = await register(client, **{"X-Request-Id": "deploy-42/step.1"})
    assert resp.status == 201
    assert resp.headers["X-Request-Id"] == "deploy-42/step.1"
    (line,) = access_lines(caplog)
    rows = await db.fetch("SELECT position, metadata::text AS metadata FROM events WHERE stream = 'target-eu-1'")
    assert [json.loads(r["metadata"])["request_id"] for r in rows] == ["deploy-42/step.1"]
    assert line["request_id"] == "deploy-42/step.1"
    assert line["actor"] == tokens_mod.OPERATOR_NAME
    assert (line["method"], line["route"], line["status"]) == ("PUT", "/v1/targets/{name}", 201)
    assert line["positions"] == [rows[0]["position"]]
    assert isinstance(line["duration_seconds"], float) and line["duration_seconds"] >= 0
    assert line["level"] == "INFO" and line["logger"] == "api.access"
    assert dt.datetime.fromisoformat(line["time"]).utcoffset() == dt.timedelta(0)
    assert "eu-1" not in json.dumps({k: v for k, v in line.items() if k != "message"})  # the template, no path


async def test_a_generic_append_records_the_request_id_in_every_event(client, db, caplog):
    caplog.set_level(logging.INFO, logger=access.log.name)
    credfiles.add_anonymous(client.app[keys.SETTINGS], "eu-2")
    body = {"events": [{"type": "TargetRegistered", "data": {"target": "eu-2", "credentials": "eu-2"}},
                       {"type": "TargetUpdated", "data": {"target": "eu-2", "credentials": "eu-2",
                                                          "labels": {"tier": "edge"}}}]}
    resp = await client.post("/v1/streams/target-eu-2/events", json=body, headers={"X-Request-Id": "batch-7"})
    assert resp.status == 201, await resp.text()
    positions = (await resp.json())["positions"]
    rows = await db.fetch("SELECT metadata::text AS m FROM events WHERE stream = 'target-eu-2' ORDER BY position")
    assert [json.loads(r["m"])["request_id"] for r in rows] == ["batch-7", "batch-7"]
    (line,) = access_lines(caplog)
    assert line["positions"] == positions and line["route"] == "/v1/streams/{stream}/events"


async def test_a_submitted_request_id_other_than_the_requests_is_refused_and_nothing_written(client, db):
    credfiles.add_anonymous(client.app[keys.SETTINGS], "eu-3")
    event = {"type": "TargetRegistered", "data": {"target": "eu-3", "credentials": "eu-3"}}
    other = await client.post("/v1/streams/target-eu-3/events", headers={"X-Request-Id": "mine"},
                              json={"events": [{**event, "metadata": {"request_id": "someone-elses"}}]})
    assert other.status == 422
    assert (await other.json())["field"] == "$.events[0].metadata.request_id"
    assert await db.fetchval("SELECT count(*) FROM events WHERE stream = 'target-eu-3'") == 0
    same = await client.post("/v1/streams/target-eu-3/events", headers={"X-Request-Id": "mine"},
                             json={"events": [{**event, "metadata": {"request_id": "mine", "reason": "r"}}]})
    assert same.status == 201
    (row,) = await db.fetch("SELECT metadata::text AS m FROM events WHERE stream = 'target-eu-3'")
    assert json.loads(row["m"])["request_id"] == "mine"


@pytest.mark.parametrize("given", ["has space", "x" * (access.MAX_LENGTH + 1), "évé", "a\"b", ""])
async def test_an_unusable_request_id_is_replaced_by_a_new_one_used_everywhere(client, db, caplog, given):
    caplog.set_level(logging.INFO, logger=access.log.name)
    resp = await register(client, **{"X-Request-Id": given})
    assert resp.status == 201
    made = resp.headers["X-Request-Id"]
    assert made != given and access.valid(made)
    (row,) = await db.fetch("SELECT metadata::text AS m FROM events WHERE stream = 'target-eu-1'")
    assert json.loads(row["m"])["request_id"] == made
    assert [line["request_id"] for line in access_lines(caplog)] == [made]


async def test_the_longest_allowed_request_id_is_kept(client):
    given = "r" * access.MAX_LENGTH
    resp = await client.get("/v1/targets", headers={"X-Request-Id": given})
    assert resp.headers["X-Request-Id"] == given


async def test_every_answer_carries_a_request_id_refusals_and_unknown_routes_too(client, caplog):
    caplog.set_level(logging.INFO, logger=access.log.name)
    refused = await client.get("/v1/targets", headers={"Authorization": "Bearer ldg_not-a-real-token-at-all"})
    missing = await client.get("/v1/no-such-route")
    read = await client.get("/v1/targets")
    ids = [r.headers["X-Request-Id"] for r in (refused, missing, read)]
    assert all(access.valid(i) for i in ids) and len(set(ids)) == 3
    lines = access_lines(caplog)
    assert [(x["status"], x["route"], x["positions"], x["request_id"]) for x in lines] == [
        (401, "/v1/targets", [], ids[0]), (404, access.UNMATCHED, [], ids[1]), (200, "/v1/targets", [], ids[2])]
    assert lines[0]["actor"] is None and lines[2]["actor"] == tokens_mod.OPERATOR_NAME


async def test_the_live_stream_returns_the_request_id(client):
    async with client.get("/v1/feed/live", headers={"X-Request-Id": "sse-1"}) as resp:
        assert resp.status == 200
        assert resp.headers["X-Request-Id"] == "sse-1"


async def test_no_secret_reaches_the_logs_whatever_the_requests_carry(client, caplog):
    """Tokens issued and presented, the operator's token, a refused token: none is in any line, at
    DEBUG, in either format."""
    caplog.set_level(logging.DEBUG)
    issued = await client.post("/v1/tokens", json={"name": "ci-bot", "role": "deployer"})
    assert issued.status == 201
    secret = (await issued.json())["token"]
    used = await client.get("/v1/events", headers={"Authorization": f"Bearer {secret}"})
    assert used.status == 200
    wrong = "ldg_" + "A" * 43
    assert (await client.get("/v1/targets", headers={"Authorization": f"Bearer {wrong}"})).status == 401
    await client.get("/v1/targets", headers={"Authorization": "Bearer short-guess"})
    assert caplog.records
    for form in ("json", "text"):
        formatter = logs.formatter(form, io.StringIO(), [servers.ADMIN_TOKEN])
        text = "\n".join(formatter.format(r) for r in caplog.records)
        for leaked in (secret, servers.ADMIN_TOKEN, wrong, "short-guess"):
            assert leaked not in text


@pytest.mark.parametrize("form", ["json", "text"])
def test_a_line_that_names_a_secret_is_scrubbed_in_both_formats(form):
    operator = "operator-chosen token of 32+ characters \"quoted\""
    issued = secrets.new()
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed with %s for %s", (
        f"Authorization: Bearer {issued}", "postgresql://ledger:hunter2@db:5432/ledger"), None)
    record.detail = f"token {operator} and {issued}"
    text = logs.formatter(form, io.StringIO(), [operator]).format(record)
    for leaked in (issued, "hunter2", operator, "quoted"):
        assert leaked not in text
    assert "postgresql://ledger:[redacted]@db:5432/ledger" in text
    assert "ledger:[redacted]" in text and "detail" in text


def test_extra_fields_are_structured_in_json_and_key_value_in_text():
    record = logging.LogRecord("handlers.applier", logging.INFO, __file__, 1, "applied %s", ("web",), None)
    for name, value in {"deployment": "web", "target": "eu-1", "revision": 3, "position": 17}.items():
        setattr(record, name, value)
    as_json = json.loads(logs.formatter("json", io.StringIO()).format(record))
    assert {k: as_json[k] for k in ("message", "deployment", "target", "revision", "position", "logger")} == {
        "message": "applied web", "deployment": "web", "target": "eu-1", "revision": 3, "position": 17,
        "logger": "handlers.applier"}
    as_text = logs.formatter("text", io.StringIO()).format(record)
    assert as_text.endswith("handlers.applier: applied web deployment=web target=eu-1 revision=3 position=17")


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_auto_is_text_on_a_terminal_and_json_otherwise():
    assert logs.chosen("auto", _Tty()) == "text"
    assert logs.chosen("auto", io.StringIO()) == "json"
    assert logs.chosen("json", _Tty()) == "json" and logs.chosen("text", io.StringIO()) == "text"


def test_an_unknown_log_format_stops_start_up_naming_it():
    with pytest.raises(settings_mod.SettingsError, match=r"log_format.*LEDGER_LOG_FORMAT.*'xml'"):
        settings_mod.load({"LEDGER_LOG_FORMAT": "xml"})


@pytest.mark.timeout(90)
async def test_ledger_serve_writes_json_lines_when_its_output_is_not_a_terminal(database_url, private_dir):
    service = servers.ServiceProcess(database_url, private_dir, **process_env(LEDGER_LOG_LEVEL="INFO",
                                                                              LEDGER_APPLIER="false"))
    await service.start()
    try:
        async with servers.session() as http, http.get(service.url + "/v1/targets",
                                                          headers={"X-Request-Id": "from-outside"}) as resp:
            assert resp.status == 200
    finally:
        service.stop()
    lines = [line for line in service.log.read_text().splitlines() if line.startswith("{")]
    parsed = [json.loads(line) for line in lines]
    (hit,) = [p for p in parsed if p.get("request_id") == "from-outside"]
    assert (hit["route"], hit["status"], hit["actor"]) == ("/v1/targets", 200, tokens_mod.OPERATOR_NAME)
    assert servers.ADMIN_TOKEN not in service.log.read_text()


def test_configuring_leaves_a_root_logger_configured_by_its_host_alone():
    """Run in-process (a test runner, an embedding program), ``ledger serve`` must not take the
    host's handlers away, nor keep a stream that the host closes later (each line then failed with
    "I/O operation on closed file" and its traceback)."""
    root = logging.getLogger()
    assert root.handlers, "pytest's capture handlers are on the root logger"
    before, level = list(root.handlers), root.level
    assert logs.configure("json", "DEBUG") is False
    assert root.handlers == before and root.level == level


def test_our_handler_writes_to_stderr_as_it_is_when_the_line_is_written(monkeypatch):
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    for handler in saved:
        root.removeHandler(handler)
    try:
        monkeypatch.setattr("sys.stderr", io.StringIO())
        assert logs.configure("text", "INFO") is True
        assert logs.configure("json", "INFO") is True  # its own configuration it replaces
        later = io.StringIO()
        monkeypatch.setattr("sys.stderr", later)
        logging.getLogger("x").info("hello", extra={"target": "eu-1"})
        assert json.loads(later.getvalue())["target"] == "eu-1"
        assert len(root.handlers) == 1
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved:
            root.addHandler(handler)
        root.setLevel(level)


def test_the_json_formatter_writes_what_the_library_would():
    # JsonFormatter.add_fields replaces the library's (for speed: a line per request); the lines
    # must stay the same, field for field and in order.
    ours = logs.JsonFormatter(logs.Redactor())
    theirs = jsonlog_msgspec.MsgspecFormatter(
        "%(levelname)s %(name)s %(message)s", rename_fields={"levelname": "level", "name": "logger"},
        reserved_attrs=sorted(logs._RESERVED), timestamp="time")
    records = [logging.makeLogRecord({"name": "api.access", "levelname": "INFO", "levelno": 20,
                                      "msg": "%s %d", "args": ("POST", 201), "request_id": "r-1",
                                      "positions": [3, 4], "_private": 1}),
               logging.makeLogRecord({"name": "x", "levelname": "ERROR", "levelno": 40, "msg": {"a": 1}}),
               logging.makeLogRecord({"name": "y", "levelname": "WARNING", "levelno": 30, "msg": "plain"})]
    try:
        raise ValueError("boom")
    except ValueError:
        records.append(logging.makeLogRecord({"name": "z", "levelname": "ERROR", "levelno": 40, "msg": "failed",
                                              "exc_info": sys.exc_info(), "deployment": "web"}))
    for record in records:
        assert ours.format(logging.makeLogRecord(record.__dict__)) == \
            theirs.format(logging.makeLogRecord(record.__dict__))
