"""MCP (wire-api.md §3.10) through the official Python SDK (`agenttrustid`).

An MCP upstream runs in this script (stdlib HTTP on 127.0.0.1: `tools/list` with annotations,
`tools/call`, recording what it receives). The org registers it with the SDK
(register_server, list_servers), an agent calls a read tool through the gateway (call_tool:
0.4.0 sends X-Agent-ID; 0.3.0 sends none, so the call names the agent's session in
X-Session-ID), a denied tool raises AuthorizationError with the rule in its message and never
reaches the upstream, and remove_server deletes the registration.

Reads AGENTTRUST_URL and AGENTTRUST_API_KEY (an admin key), asserts every answer, prints one
line per step and exits non-zero on the first failure.
"""

import http.server
import inspect
import json
import os
import sys
import threading
import urllib.request
import uuid

import agenttrustid
from agenttrustid import AgentTrustClient
from agenttrustid.exceptions import AgentTrustError, AuthorizationError

RECEIVED = []


class Upstream(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - the stdlib's name
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length) or b"{}")
        RECEIVED.append(body)
        method = body.get("method", "")
        if method == "tools/list":
            result = {
                "tools": [
                    {"name": "read_file", "annotations": {"readOnlyHint": True}},
                    {"name": "run_shell"},
                ]
            }
        elif method == "tools/call":
            result = {"content": [{"type": "text", "text": "ran " + body["params"]["name"]}]}
        else:
            result = {}
        answer = json.dumps({"jsonrpc": "2.0", "id": body.get("id"), "result": result}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


def step(text):
    print(f"ok: {text}", flush=True)


def tool_calls():
    return [body["params"]["name"] for body in RECEIVED if body.get("method") == "tools/call"]


def main():
    upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{upstream.server_address[1]}/mcp"

    client = AgentTrustClient.from_env()
    agent = client.agents.create(name=f"mcp-{uuid.uuid4().hex[:8]}", framework="custom")

    server = client.mcp.register_server(name="files", url=url, capabilities=["files:read"])
    assert server.id and server.name == "files" and server.url == url, server
    assert server.capabilities == ["files:read"] and server.org_id == agent.org_id, server
    assert server.created_at is not None, server
    assert server.id in [listed.id for listed in client.mcp.list_servers()]
    step("mcp.register_server / list_servers")

    # The SDK has no policy API: raw HTTP.
    request = urllib.request.Request(
        os.environ["AGENTTRUST_URL"].rstrip("/") + "/api/v1/policies",
        data=json.dumps(
            {"rules": [{"id": "no-shell", "tools": ["run_shell"], "decision": "deny"}]}
        ).encode(),
        headers={"X-API-Key": os.environ["AGENTTRUST_API_KEY"], "Content-Type": "application/json"},
        method="PUT",
    )
    urllib.request.urlopen(request).read()

    # 0.4.0 names the agent (X-Agent-ID); 0.3.0 cannot, so it names the agent's session.
    session = client.sessions.init_session(agent.id, server.id)
    sends_agent = "agent_id" in inspect.signature(client.mcp.call_tool).parameters

    def call(method, params):
        if sends_agent:
            return client.mcp.call_tool(server.id, agent.id, method, params, session.session_id)
        return client.mcp.call_tool(server.id, method, params, session.session_id)

    listed = call("tools/list", None)
    assert [tool["name"] for tool in listed["tools"]] == ["read_file"], listed
    step("mcp.call_tool tools/list -> only the tools the policy allows")

    result = call("tools/call", {"name": "read_file", "arguments": {"path": "/tmp/a"}})
    assert result["content"][0]["text"] == "ran read_file", result
    assert tool_calls() == ["read_file"], RECEIVED
    step("mcp.call_tool read_file -> forwarded")

    try:
        call("tools/call", {"name": "run_shell", "arguments": {"cmd": "id"}})
        raise AssertionError("a denied tool call succeeded")
    except AuthorizationError as error:
        assert "no-shell" in str(error), str(error)
    assert tool_calls() == ["read_file"], RECEIVED
    step("mcp.call_tool run_shell -> AuthorizationError naming the rule, never forwarded")

    client.mcp.remove_server(server.id)
    assert server.id not in [listed.id for listed in client.mcp.list_servers()]
    try:
        call("tools/call", {"name": "read_file"})
        raise AssertionError("a removed server answered")
    except AgentTrustError as error:
        assert error.code == "NOT_FOUND", (error.code, str(error))
    step("mcp.remove_server -> the proxy answers NOT_FOUND")

    upstream.shutdown()
    print(f"mcp passed with agenttrustid from {agenttrustid.__file__}")


if __name__ == "__main__":
    try:
        main()
    except Exception as error:  # noqa: BLE001 - the test prints whatever failed
        import traceback

        traceback.print_exc()
        print(f"mcp FAILED: {error!r}", file=sys.stderr)
        sys.exit(1)
