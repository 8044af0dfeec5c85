"""The stand-in speaks the OpenAI Responses and Chat Completions APIs well enough for OpenAI's
own client to read them: the official ``openai`` Python SDK (the one aider's virtualenv from
scripts/agents.sh carries) streams and accumulates its answers, text, function calls and
usage, and raises its typed errors for the error statuses; the stand-in counts as served
exactly the usage it reported."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.support.agent_clis import agent_binary
from tests.support.model_server import ModelServer, Reply, Text, ToolCall, Usage
from tests.support.model_server.openai import ChatCompletions, Responses

# Run by the SDK's Python: argv = base URL, API, request kind; prints one JSON line.
CLIENT = r'''
import json, sys, openai
url, api, kind = sys.argv[1:]
client = openai.OpenAI(base_url=url + "/v1", api_key="sk-standin", max_retries=0)
out = {}
try:
    if api == "responses" and kind == "stream":
        with client.responses.stream(model="gpt-5.5", input="hi") as stream:
            out["events"] = [event.type for event in stream]
            final = stream.get_final_response()
        out["output"] = [item.model_dump() for item in final.output]
        out["text"] = final.output_text
        out["usage"] = final.usage.model_dump()
    elif api == "responses":
        final = client.responses.create(model="gpt-5.5", input="hi")
        out["text"], out["usage"] = final.output_text, final.usage.model_dump()
    elif kind == "stream":
        with client.chat.completions.stream(model="gpt-4o", messages=[{"role": "user", "content": "hi"}],
                                            stream_options={"include_usage": True}) as stream:
            for _ in stream:
                pass
            final = stream.get_final_completion()
        out["message"] = final.choices[0].message.model_dump()
        out["finish"] = final.choices[0].finish_reason
        out["usage"] = final.usage.model_dump()
    else:
        final = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        out["message"] = final.choices[0].message.model_dump()
        out["finish"] = final.choices[0].finish_reason
        out["usage"] = final.usage.model_dump()
except openai.APIStatusError as error:
    out["error"] = [type(error).__name__, error.status_code, error.body]
print(json.dumps(out))
'''


@pytest.fixture(scope="module")
def sdk_python() -> Path:
    """The Python of aider's virtualenv, which has the official openai SDK."""
    return agent_binary("aider").resolve().parent / "python"


def client(python: Path, server: ModelServer, api: str, kind: str) -> dict:
    done = subprocess.run([python, "-c", CLIENT, server.url, api, kind], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"the openai SDK failed on the stand-in's answer:\n{done.stderr[-3000:]}"
    return json.loads(done.stdout)


USAGE = Usage(input=1000, output=42, cache_read=300)


def test_a_streamed_response_with_text_and_a_function_call(sdk_python):
    reply = Reply(blocks=(Text("Hello there, stand-in."), ToolCall("exec_command", {"cmd": "ls"})), usage=USAGE)
    with ModelServer(Responses(), [reply]) as server:
        got = client(sdk_python, server, "responses", "stream")
    assert got["events"] == [
        "response.created", "response.in_progress",
        "response.output_item.added", "response.content_part.added", "response.output_text.delta",
        "response.output_text.delta", "response.output_text.delta", "response.output_text.done",
        "response.content_part.done", "response.output_item.done",
        "response.output_item.added", "response.function_call_arguments.delta",
        "response.function_call_arguments.done", "response.output_item.done", "response.completed"]
    assert got["text"] == "Hello there, stand-in."
    call = got["output"][1]
    assert (call["type"], call["name"], json.loads(call["arguments"])) == ("function_call", "exec_command", {"cmd": "ls"})
    assert got["usage"]["input_tokens"] == 1300 and got["usage"]["input_tokens_details"]["cached_tokens"] == 300
    assert (got["usage"]["output_tokens"], got["usage"]["total_tokens"]) == (42, 1342)
    assert server.served == USAGE and [r.status for r in server.requests] == [200]


def test_a_response_as_json(sdk_python):
    with ModelServer(Responses(), [Reply.text("plain", USAGE)]) as server:
        got = client(sdk_python, server, "responses", "json")
    assert (got["text"], got["usage"]["input_tokens"]) == ("plain", 1300)
    assert server.served == USAGE


@pytest.mark.parametrize("kind", ["stream", "json"])
def test_a_chat_completion_with_a_tool_call(sdk_python, kind):
    reply = Reply(blocks=(Text("Calling."), ToolCall("search", {"q": "larry"})), usage=USAGE)
    with ModelServer(ChatCompletions(), [reply]) as server:
        got = client(sdk_python, server, "chat", kind)
    assert got["message"]["content"] == "Calling." and got["finish"] == "tool_calls"
    [call] = got["message"]["tool_calls"]
    assert (call["function"]["name"], json.loads(call["function"]["arguments"])) == ("search", {"q": "larry"})
    assert got["usage"]["prompt_tokens"] == 1300 and got["usage"]["prompt_tokens_details"]["cached_tokens"] == 300
    assert got["usage"]["completion_tokens"] == 42
    assert server.served == USAGE


def test_a_stream_that_asks_for_no_usage_serves_none():
    """Without stream_options.include_usage the API reports no usage: nothing counts as served."""
    body = {"model": "gpt-4o", "stream": True, "messages": []}
    events = list(ChatCompletions().stream(body, Reply.text("hi", USAGE), 1))
    assert events[-1].data == "[DONE]" and all(e.usage is None for e in events)


@pytest.mark.parametrize("api, provider, status, error", [
    ("responses", Responses(), 429, "RateLimitError"), ("responses", Responses(), 500, "InternalServerError"),
    ("chat", ChatCompletions(), 429, "RateLimitError"), ("chat", ChatCompletions(), 503, "InternalServerError")])
def test_error_statuses_are_the_sdks_typed_errors_and_serve_nothing(sdk_python, api, provider, status, error):
    with ModelServer(provider, [Reply.error(status, retry_after=1)]) as server:
        got = client(sdk_python, server, api, "json")
    kind, code, body = got["error"]
    assert (kind, code) == (error, status)
    assert set(body) >= {"message", "type", "code"}, "the SDK unwraps the API's {'error': {...}} body"
    assert server.served == Usage() and server.requests[0].status == status


def test_the_openai_apis_report_no_cache_writes():
    with pytest.raises(ValueError, match="cache_write must be 0"):
        Responses().usage(Usage(1, 1, 0, 5))
