"""The official MCP Python SDK's 2.x line (`mcp` 2.x, whose newest revision is the stateless
2026-07-28) on both sides of the gateway.

The upstream is an `MCPServer` over Streamable HTTP (uvicorn on 127.0.0.1) with a read tool, a
tool only its annotations call destructive, and a shell a policy rule denies. The SDK's `Client`
connects to `AGENTTRUST_URL/mcp/<server id>` with `Authorization: Bearer at_…`, in the mode the
first argument names:

- `modern`: the client's default, which probes `server/discover` and adopts 2026-07-28: no
  session, no `initialize`, the method and tool name mirrored in `Mcp-Method`/`Mcp-Name`;
- `legacy`: the `initialize` handshake, whose session the gateway maps to one it mints.

Either way the client lists only the tools the agent may call, calls the read tool, is refused the
shell (a JSON-RPC error naming the rule) and the hint-destructive tool (an approval to wait on),
and calls that tool once a human approved. What the upstream ran is the proof: nothing refused
reached it.

Reads AGENTTRUST_URL and AGENTTRUST_API_KEY (an admin key), asserts every answer, prints one line
per step and exits non-zero on the first failure.
"""

import asyncio
import json
import os
import socket
import sys
import threading
import time
import urllib.error
import urllib.request

import httpx2
import uvicorn
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError
from mcp.types import ToolAnnotations

GATEWAY = os.environ["AGENTTRUST_URL"].rstrip("/")
KEY = os.environ["AGENTTRUST_API_KEY"]
MODE = sys.argv[1]
assert MODE in ("modern", "legacy"), MODE
RAN = []


def step(text):
    print(f"ok: {text}", flush=True)


def api(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(GATEWAY + path, data=data, method=method)
    request.add_header("X-API-Key", KEY)
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read()
    except urllib.error.HTTPError as error:
        raise AssertionError(f"{method} {path}: {error.code} {error.read()!r}") from error
    return json.loads(text) if text else None


def upstream():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = MCPServer("notes")

    @server.tool(annotations=ToolAnnotations(readOnlyHint=True))
    def read_notes(topic: str) -> str:
        RAN.append("read_notes")
        return f"notes about {topic}"

    @server.tool(annotations=ToolAnnotations(readOnlyHint=False, destructiveHint=True))
    def tidy_notes() -> str:
        RAN.append("tidy_notes")
        return "tidied"

    @server.tool()
    def run_shell(command: str) -> str:
        RAN.append("run_shell")
        return "ran"

    config = uvicorn.Config(
        server.streamable_http_app(), host="127.0.0.1", port=port, log_level="warning"
    )
    served = uvicorn.Server(config)
    threading.Thread(target=served.run, daemon=True).start()
    deadline = time.monotonic() + 20
    while not served.started:
        assert time.monotonic() < deadline, "the upstream did not start"
        time.sleep(0.02)
    return f"http://127.0.0.1:{port}/mcp"


async def agent_session(server_id, token, work):
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=60)) as http:
        transport = streamable_http_client(f"{GATEWAY}/mcp/{server_id}", http_client=http)
        # No client-side cache: the gateway answers each agent, and each approval, anew.
        async with Client(
            transport, mode="auto" if MODE == "modern" else "legacy", cache=None
        ) as client:
            return await work(client)


async def main():
    url = upstream()
    server_id = api("POST", "/mcp/servers", {"name": "notes", "url": url})["id"]
    agent_id = api(
        "POST",
        "/api/v1/agents",
        {"name": f"notes-agent-{MODE}", "capabilities": ["notes:admin", "shell:admin"]},
    )["id"]
    session = api("POST", "/mcp/sessions/init", {"agent_id": agent_id, "server_id": server_id})
    token = api(
        "POST",
        "/api/v1/agent-tokens/issue",
        {"agent_id": agent_id, "session_id": session["session_id"], "ttl": 600,
         "scopes": ["notes:admin", "shell:admin"]},
    )["token"]
    api(
        "PUT",
        "/api/v1/policies",
        {"rules": [{"id": "no-shell", "tools": ["run_shell"], "decision": "deny",
                    "reason": "no shells for notes agents"}]},
    )
    step(f"upstream {url} registered as {server_id}; agent {agent_id} has a token")

    async def first_visit(client):
        expected = "2026-07-28" if MODE == "modern" else "2025-11-25"
        assert client.protocol_version == expected, client.protocol_version
        step(f"the client speaks {client.protocol_version} through the gateway")
        listed = await client.list_tools()
        names = sorted(tool.name for tool in listed.tools)
        assert names == ["read_notes", "tidy_notes"], names
        step(f"tools/list through the gateway ({MODE}): {names} (run_shell is denied)")

        result = await client.call_tool("read_notes", {"topic": "rust"})
        assert not result.is_error, result
        assert result.content[0].text == "notes about rust", result
        step("read_notes called through the gateway")

        try:
            await client.call_tool("run_shell", {"command": "id"})
            raise AssertionError("run_shell was not refused")
        except MCPError as error:
            assert error.code == -32001, error.error
            assert "no-shell" in error.message, error.message
            assert error.data["rule"] == "rule:no-shell", error.data
        step("run_shell refused with a JSON-RPC error naming rule no-shell")

        try:
            await client.call_tool("tidy_notes", {})
            raise AssertionError("tidy_notes was not refused")
        except MCPError as error:
            assert error.data["elevation_required"] is True, error.data
            approval = error.data["approval_id"]
            assert approval and approval in error.message, error.error
        step(f"tidy_notes (destructive by its annotation) needs approval {approval}")
        return approval

    approval = await agent_session(server_id, token, first_visit)
    assert RAN == ["read_notes"], RAN

    api("POST", f"/mcp/approvals/{approval}/approve", {"decided_by": "oncall"})

    async def after_approval(client):
        result = await client.call_tool("tidy_notes", {})
        assert not result.is_error, result
        assert result.content[0].text == "tidied", result
        step("tidy_notes called once a human approved")

    await agent_session(server_id, token, after_approval)
    assert RAN == ["read_notes", "tidy_notes"], RAN

    events = api("GET", "/api/v1/audit/events?limit=500")["events"]
    decided = [
        event for event in events
        if event["kind"] == "check.decided" and event["detail"].get("agent_id") == agent_id
    ]
    assert len(decided) == 4, decided
    opened = [event for event in events if event["kind"] == "mcp.session.opened"
              and event["detail"].get("agent_id") == agent_id]
    assert len(opened) == (0 if MODE == "modern" else 2), opened
    step(f"audit: {len(decided)} checks decided, {len(opened)} MCP sessions opened")
    print(f"mcp2_client {MODE} passed", flush=True)


asyncio.run(main())
