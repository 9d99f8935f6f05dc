"""An MCP server and client built with the official MCP Python SDK (`mcp`), with the gateway
between them.

The upstream is a FastMCP server over Streamable HTTP (uvicorn on 127.0.0.1) with a read tool,
a destructive tool, a tool only its annotations call destructive, and a shell a policy rule
denies; it runs stateful (it assigns sessions) or stateless (`stateless_http`), as the first
argument says. The org registers it and gives an agent a session and a token for it; the official
`mcp` client connects to `AGENTTRUST_URL/mcp/<server id>` with `Authorization: Bearer at_…` and
lists only the tools the agent may call, calls the read tool, is refused the shell (a JSON-RPC
error naming the rule) and the hint-destructive tool (an approval to wait on), and calls that
tool once a human approved. What the upstream ran is the proof: nothing refused reached it.

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

import httpx
import uvicorn
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.server.fastmcp import FastMCP
from mcp.shared.exceptions import McpError
from mcp.types import ToolAnnotations

GATEWAY = os.environ["AGENTTRUST_URL"].rstrip("/")
KEY = os.environ["AGENTTRUST_API_KEY"]
STATELESS = sys.argv[1:] == ["stateless"]
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
    server = FastMCP("notes", host="127.0.0.1", port=port, stateless_http=STATELESS)

    @server.tool(annotations=ToolAnnotations(readOnlyHint=True))
    def read_notes(topic: str) -> str:
        RAN.append("read_notes")
        return f"notes about {topic}"

    @server.tool(annotations=ToolAnnotations(destructiveHint=True))
    def delete_notes(topic: str) -> str:
        RAN.append("delete_notes")
        return f"deleted {topic}"

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


async def connect(server_id, token):
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(30, read=60))


async def agent_session(server_id, token, work):
    async with await connect(server_id, token) as http:
        async with streamable_http_client(f"{GATEWAY}/mcp/{server_id}", http_client=http) as (
            read,
            write,
            session_id,
        ):
            async with ClientSession(read, write) as session:
                initialized = await session.initialize()
                assert initialized.serverInfo.name == "notes", initialized
                minted = session_id()
                if STATELESS:
                    assert minted is None, minted
                else:
                    assert minted and minted.startswith("mcps_"), minted
                return await work(session)


async def main():
    url = upstream()
    mode = "stateless" if STATELESS else "stateful"
    server_id = api("POST", "/mcp/servers", {"name": "notes", "url": url})["id"]
    agent_id = api(
        "POST",
        "/api/v1/agents",
        {"name": f"notes-agent-{mode}", "capabilities": ["notes:admin", "shell:admin"]},
    )["id"]
    session = api("POST", "/mcp/sessions/init", {"agent_id": agent_id, "server_id": server_id})
    session_id = session["session_id"]
    token = api(
        "POST",
        "/api/v1/agent-tokens/issue",
        {"agent_id": agent_id, "session_id": session_id, "ttl": 600,
         "scopes": ["notes:admin", "shell:admin"]},
    )["token"]
    api(
        "PUT",
        "/api/v1/policies",
        {"rules": [{"id": "no-shell", "tools": ["run_shell"], "decision": "deny",
                    "reason": "no shells for notes agents"}]},
    )
    step(f"{mode} upstream {url} registered as {server_id}; agent {agent_id} has a token")

    async def first_visit(client):
        listed = await client.list_tools()
        names = sorted(tool.name for tool in listed.tools)
        assert names == ["delete_notes", "read_notes", "tidy_notes"], names
        step(f"tools/list through the gateway: {names} (run_shell is denied, so not listed)")

        result = await client.call_tool("read_notes", {"topic": "rust"})
        assert not result.isError, result
        assert result.content[0].text == "notes about rust", result
        step("read_notes called through the gateway")

        try:
            await client.call_tool("run_shell", {"command": "id"})
            raise AssertionError("run_shell was not refused")
        except McpError as error:
            assert error.error.code == -32001, error.error
            assert "no-shell" in error.error.message, error.error.message
            assert error.error.data["rule"] == "rule:no-shell", error.error.data
        step("run_shell refused with a JSON-RPC error naming rule no-shell")

        try:
            await client.call_tool("tidy_notes", {})
            raise AssertionError("tidy_notes was not refused")
        except McpError as error:
            assert error.error.data["elevation_required"] is True, error.error.data
            approval = error.error.data["approval_id"]
            assert approval and approval in error.error.message, error.error
        step(f"tidy_notes (destructive by its annotation) needs approval {approval}")
        return approval

    approval = await agent_session(server_id, token, first_visit)
    assert RAN == ["read_notes"], RAN

    api("POST", f"/mcp/approvals/{approval}/approve", {"decided_by": "oncall"})

    async def after_approval(client):
        await client.list_tools()
        result = await client.call_tool("tidy_notes", {})
        assert not result.isError, result
        assert result.content[0].text == "tidied", result
        step("tidy_notes called once a human approved")

    await agent_session(server_id, token, after_approval)
    assert RAN == ["read_notes", "tidy_notes"], RAN

    events = api("GET", f"/api/v1/audit/events?limit=500")["events"]
    kinds = [event["kind"] for event in events]
    decided = kinds.count("check.decided")
    assert decided == 4, kinds
    opened = kinds.count("mcp.session.opened")
    assert opened == (0 if STATELESS else 2), kinds
    if not STATELESS:
        # The client ended its sessions with DELETE on leaving.
        assert kinds.count("mcp.session.ended") == 2, kinds
    step(f"audit: {decided} checks decided, {opened} MCP sessions opened")
    print(f"mcp_client {mode} passed", flush=True)


asyncio.run(main())
