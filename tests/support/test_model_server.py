"""The stand-in model server speaks the Anthropic Messages API as the real one streams it, and
counts as served exactly what its answers reported."""

from __future__ import annotations

import http.client
import json

import pytest

from tests.support.model_server import ModelServer, Reply, Text, ToolCall, Usage
from tests.support.model_server.anthropic import Anthropic


def post(server: ModelServer, body: dict, path: str = "/v1/messages?beta=true"):
    """(status, headers, raw body) of one request; a cut stream ends the body early."""
    host, port = server.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.request("POST", path, json.dumps(body), {"content-type": "application/json"})
    response = connection.getresponse()
    try:
        data = response.read()
    except http.client.IncompleteRead as cut:
        data = cut.partial
    connection.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, data.decode()


def events(raw: str) -> list[tuple[str, dict]]:
    frames = [f.split("\n") for f in raw.strip().split("\n\n") if f]
    return [(f[0].removeprefix("event: "), json.loads(f[1].removeprefix("data: "))) for f in frames]


def test_a_streamed_message_with_text_and_a_tool_call():
    reply = Reply(blocks=(Text("hi"), ToolCall("Bash", {"command": "ls"})), usage=Usage(10, 20, 30, 40))
    with ModelServer(Anthropic(), [reply]) as server:
        status, headers, raw = post(server, {"model": "m", "stream": True, "messages": []})
    assert (status, headers["content-type"]) == (200, "text/event-stream")
    got = events(raw)
    assert [name for name, _ in got] == ["message_start", "ping",
                                         *["content_block_start", "content_block_delta", "content_block_stop"] * 2,
                                         "message_delta", "message_stop"]
    assert all(data["type"] == name for name, data in got)
    start = got[0][1]["message"]
    assert (start["model"], start["stop_reason"], start["usage"]) == (
        "m", None, {"input_tokens": 10, "cache_creation_input_tokens": 40, "cache_read_input_tokens": 30, "output_tokens": 1})
    assert got[5][1]["content_block"] == {"type": "tool_use", "id": "toolu_standin000101", "name": "Bash", "input": {}}
    assert json.loads(got[6][1]["delta"]["partial_json"]) == {"command": "ls"}
    assert got[-2][1]["delta"]["stop_reason"] == "tool_use" and got[-2][1]["usage"]["output_tokens"] == 20
    assert server.served == Usage(10, 20, 30, 40)
    assert server.requests[0].body["model"] == "m" and server.requests[0].reply == 0


def test_errors_carry_retry_after_and_the_api_error_body_then_the_script_runs_out():
    with ModelServer(Anthropic(), [Reply.error(429, retry_after=2)]) as server:
        status, headers, raw = post(server, {"stream": True})
        assert (status, headers["retry-after"], json.loads(raw)["error"]["type"]) == (429, "2", "rate_limit_error")
        status, _, raw = post(server, {"stream": True})
        assert status == 500 and "script exhausted" in raw
        assert post(server, {}, "/v1/other")[0] == 404
    assert [r.status for r in server.requests] == [429, 500, 404]
    assert len(server.unscripted) == 2 and server.served == Usage()


def test_then_answers_every_request_after_the_script():
    with ModelServer(Anthropic(), [], then=Reply.error(529)) as server:
        assert [post(server, {"stream": True})[0] for _ in range(3)] == [529, 529, 529]
    assert [r.reply for r in server.requests] == [-1, -1, -1] and server.unscripted == []


@pytest.mark.parametrize("cut_after, served", [(0, Usage()), (1, Usage(5, 1, 6, 7)), (3, Usage(5, 1, 6, 7))])
def test_a_cut_stream_serves_only_what_its_sent_events_reported(cut_after, served):
    reply = Reply(blocks=(Text("hi"),), usage=Usage(5, 50, 6, 7), cut_after=cut_after)
    with ModelServer(Anthropic(), [reply]) as server:
        _, _, raw = post(server, {"stream": True})
    assert len(events(raw)) == cut_after
    assert server.served == served


def test_a_non_streaming_request_gets_the_whole_message():
    with ModelServer(Anthropic(), [Reply.text("whole", Usage(1, 2, 3, 4))]) as server:
        status, _, raw = post(server, {"model": "m"})
    message = json.loads(raw)
    assert (status, message["content"], message["stop_reason"]) == (200, [{"type": "text", "text": "whole"}], "end_turn")
    assert message["usage"]["output_tokens"] == 2 and server.served == Usage(1, 2, 3, 4)
