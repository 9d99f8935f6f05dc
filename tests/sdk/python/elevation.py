"""The elevation loop (wire-api.md §5.6) through the official Python SDK (`agenttrustid`).

An agent's guard asks for a destructive call in its session, the gateway answers "elevation
required" with an approval id, an operator approves it with the SDK, and the same guard's retry
in the same session is allowed. Also: a denial, deciding twice, and the sessions API.

Reads AGENTTRUST_URL and AGENTTRUST_API_KEY (an admin key), asserts every answer, prints one
line per step and exits non-zero on the first failure.
"""

import sys
import uuid

import agenttrustid
from agenttrustid import AgentTrustClient
from agenttrustid.exceptions import AgentTrustError, AuthenticationError
from agenttrustid.guard import AgentTrustGuard


def step(text):
    print(f"ok: {text}", flush=True)


def expect_error(code, call):
    try:
        call()
    except AgentTrustError as error:
        assert error.code == code, (error.code, str(error))
        return error
    raise AssertionError(f"expected {code}, the call succeeded")


def main():
    client = AgentTrustClient.from_env()
    agent = client.agents.create(
        name=f"elevation-{uuid.uuid4().hex[:8]}", framework="custom", capabilities=["web:search"]
    )

    # 1. The guard: a read passes, a destructive call needs a human.
    guard = AgentTrustGuard(client, agent_id=agent.id)
    assert guard.check("web_search", input_summary="rust news") is True
    step("guard.check web_search -> allowed")

    error = expect_error(
        "ELEVATION_REQUIRED", lambda: guard.check("delete_all", input_summary="delete everything")
    )
    approval_id = error.details["approval_id"]
    assert approval_id, error.details
    assert error.details.get("elevation_required") is True, error.details
    step(f"guard.check delete_all -> ELEVATION_REQUIRED ({approval_id})")

    # Asking again while pending reuses the same approval: no approval spam.
    again = expect_error(
        "ELEVATION_REQUIRED", lambda: guard.check("delete_all", input_summary="delete everything")
    )
    assert again.details["approval_id"] == approval_id, again.details
    step("the same check while pending -> the same approval id")

    # 2. The operator looks at it and approves it.
    pending = client.approvals.get(approval_id)
    assert pending.id == approval_id, pending
    assert pending.status == "pending", pending
    assert pending.session_id == guard.session_id, pending
    assert pending.agent_id == agent.id and pending.org_id == agent.org_id, pending
    assert pending.action_name == "delete_all" and pending.action_effect == "destructive", pending
    assert pending.created_at.tzinfo is not None and pending.expires_at > pending.created_at, pending
    assert pending.decided_by is None, pending
    step("approvals.get -> pending")

    answer = client.approvals.approve(approval_id, decided_by="alice@example.com")
    assert answer["status"] == "approved", answer
    decided = client.approvals.get(approval_id)
    assert decided.status == "approved" and decided.decided_by == "alice@example.com", decided
    step("approvals.approve -> approved")

    # 3. The same guard, same session: allowed now; the session reads elevated.
    assert guard.check("delete_all", input_summary="delete everything") is True
    step("guard.check delete_all after approval -> allowed")
    session = client.sessions.get_session(guard.session_id)
    assert session.session_id == guard.session_id, session
    assert session.agent_id == agent.id and session.org_id == agent.org_id, session
    assert session.source == "sdk", session
    assert session.mode == "elevated", session
    assert session.total_calls == 4 and session.read_calls == 1, session
    assert session.denied_calls == 0, session
    step(f"sessions.get_session -> mode {session.mode}, {session.total_calls} calls")

    # Deciding twice is a conflict.
    expect_error("HTTP_409", lambda: client.approvals.deny(approval_id, decided_by="mallory"))
    step("approvals.deny after approval -> HTTP_409")
    guard.close()

    # 4. A denial: the retried call is denied, naming the decider.
    other = AgentTrustGuard(client, agent_id=agent.id)
    refused = expect_error(
        "ELEVATION_REQUIRED", lambda: other.check("drop_table", input_summary="DROP TABLE users")
    )
    refused_id = refused.details["approval_id"]
    assert refused_id != approval_id
    answer = client.approvals.deny(refused_id, decided_by="bob@example.com")
    assert answer["status"] == "denied", answer
    final = expect_error(
        "ACTION_DENIED", lambda: other.check("drop_table", input_summary="DROP TABLE users")
    )
    assert "bob@example.com" in str(final), str(final)
    step("approvals.deny -> the retried check is ACTION_DENIED by bob")
    other.close()

    expect_error("NOT_FOUND", lambda: client.approvals.get(str(uuid.uuid4())))
    expect_error("NOT_FOUND", lambda: client.approvals.approve(str(uuid.uuid4())))
    step("unknown approval ids -> NOT_FOUND")

    # 5. Sessions opened explicitly.
    # An MCP session names a registered server (an unknown one is NOT_FOUND).
    expect_error("NOT_FOUND", lambda: client.sessions.init_session(agent.id, "github"))
    server = client.mcp.register_server(name="github", url="http://127.0.0.1:9/mcp")
    mcp = client.sessions.init_session(agent.id, server.id)
    assert mcp.session_id and mcp.agent_id == agent.id and mcp.org_id == agent.org_id, mcp
    assert mcp.source == "mcp" and mcp.server_id == server.id and mcp.mode == "standard", mcp
    assert mcp.created_at is not None, mcp
    fetched = client.sessions.get_session(mcp.session_id)
    assert fetched.session_id == mcp.session_id and fetched.total_calls == 0, fetched
    step("sessions.init_session / get_session")

    token = client.tokens.issue(agent_id=agent.id, scopes=["web:search"], use_cache=False)
    api = client.sessions.init_api_session(token.token)
    assert api.source == "api" and api.agent_id == agent.id, api
    assert api.scope_ceiling == ["web:search"], api
    try:
        client.sessions.init_api_session("at_not-a-token")
        raise AssertionError("a bogus token opened a session")
    except AuthenticationError:
        pass
    step("sessions.init_api_session (scope ceiling from the token; a bogus token -> 401)")

    expect_error("NOT_FOUND", lambda: client.sessions.get_session(str(uuid.uuid4())))
    step("sessions.get_session unknown -> NOT_FOUND")

    print(f"elevation passed with agenttrustid from {agenttrustid.__file__}")


if __name__ == "__main__":
    try:
        main()
    except Exception as error:  # noqa: BLE001 - the test prints whatever failed
        import traceback

        traceback.print_exc()
        print(f"elevation FAILED: {error!r}", file=sys.stderr)
        sys.exit(1)
