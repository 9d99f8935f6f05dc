"""The product README's quick start, through the official Python SDK (`agenttrustid`).

Reads AGENTTRUST_URL and AGENTTRUST_API_KEY (an admin key) like any SDK user, asserts every
answer, prints one line per step and exits non-zero on the first failure.
"""

import sys
import uuid
from datetime import datetime, timezone

import agenttrustid
from agenttrustid import AgentTrustClient
from agenttrustid.exceptions import AgentTrustError, AuthenticationError, ValidationError
from agenttrustid.models import AgentStatus


def step(text):
    print(f"ok: {text}", flush=True)


def main():
    client = AgentTrustClient.from_env()

    health = client.health()
    assert health["status"] == "healthy", health
    step(f"health {health}")

    name = f"quickstart-{uuid.uuid4().hex[:8]}"
    agent = client.agents.create(
        name=name,
        framework="langchain",
        capabilities=["web:search", "files:read"],
        metadata={"team": "sdk"},
    )
    assert agent.id and agent.name == name, agent
    assert agent.status == AgentStatus.ACTIVE, agent
    assert agent.framework == "langchain", agent
    assert agent.capabilities == ["web:search", "files:read"], agent
    assert agent.created_at is not None and agent.created_at.tzinfo is not None, agent
    step(f"agents.create {agent.id}")

    listed = client.agents.list()
    assert agent.id in [a.id for a in listed], listed
    step(f"agents.list ({len(listed)})")

    fetched = client.agents.get(agent.id)
    assert fetched.id == agent.id and fetched.name == name and fetched.org_id == agent.org_id
    step("agents.get")

    token = client.tokens.issue(
        agent_id=agent.id, scopes=["web:search"], target="mcp://search", ttl_seconds=300
    )
    assert token.token.startswith("at_"), token
    assert token.agent_id == agent.id and token.scopes == ["web:search"], token
    assert (token.expires_at - token.issued_at).total_seconds() == 300, token
    assert not token.is_expired and 250 < token.ttl_seconds <= 300, token
    again = client.tokens.issue(agent_id=agent.id, scopes=["web:search"], target="mcp://search")
    assert again.token == token.token, "the SDK's cache returns the same token"
    step("tokens.issue")

    result = client.tokens.introspect(token.token, target="mcp://search", required_scopes=["web:search"])
    assert result.active is True, result
    assert result.agent_id == agent.id and result.org_id == agent.org_id, result
    assert result.scopes == ["web:search"], result
    assert result.expires_at == token.expires_at, result
    missing = client.tokens.introspect(token.token, required_scopes=["files:read"])
    assert missing.active is False and missing.reasoning, missing
    step("tokens.introspect")

    try:
        client.tokens.issue(agent_id=agent.id, scopes=["files:write"], use_cache=False)
        raise AssertionError("a scope outside the capabilities was issued")
    except ValidationError as error:
        assert "files:write" in str(error), error
    step("tokens.issue rejects a scope outside the capabilities")

    allowed = client.actions.check(
        agent_id=agent.id,
        tool_name="web_search",
        tool_input_summary="latest AI research papers",
        session_id="sess-1",
    )
    assert allowed.allowed is True, allowed
    assert allowed.check_id and allowed.guard_tier == "fast", allowed
    assert 0 < allowed.confidence <= 1 and allowed.latency_ms >= 0 and allowed.reason, allowed
    step(f"actions.check web_search -> allowed ({allowed.reason})")

    denied = client.actions.check(
        agent_id=agent.id,
        action="tool_call",
        tool_name="delete_all",
        tool_input_summary="delete everything",
        session_id="sess-1",
    )
    assert denied.allowed is False, denied
    assert denied.reason, denied
    step(f"actions.check delete_all -> denied ({denied.reason})")

    report = client.telemetry.report(
        agent.id,
        "sess-1",
        [
            {"event_type": "tool_start", "tool_name": "web_search",
             "timestamp": datetime.now(timezone.utc).isoformat()},
            {"event_type": "tool_end", "tool_name": "web_search", "duration_ms": 120,
             "success": True, "timestamp": datetime.now(timezone.utc).isoformat()},
        ],
    )
    assert report == {"accepted": True, "events_processed": 2} or (
        report["accepted"] is True and report["events_processed"] == 2
    ), report
    step("telemetry.report")

    assert client.tokens.revoke(token.token, reason="done") is True
    revoked = client.tokens.introspect(token.token)
    assert revoked.active is False, revoked
    step("tokens.revoke")

    survivor = client.tokens.issue(agent_id=agent.id, scopes=[], use_cache=False)
    assert client.agents.revoke(agent.id, reason="quickstart done") is True
    assert client.agents.get(agent.id).status == AgentStatus.REVOKED
    assert client.tokens.introspect(survivor.token).active is False
    after = client.actions.check(agent_id=agent.id, tool_name="web_search")
    assert after.allowed is False, after
    step("agents.revoke (its tokens and checks stop)")

    try:
        client.agents.get(str(uuid.uuid4()))
        raise AssertionError("an unknown agent was found")
    except AgentTrustError as error:
        assert error.code == "NOT_FOUND", error.code
    step("agents.get unknown -> NOT_FOUND")

    wrong = AgentTrustClient(base_url=client.http.base_url, api_key="sk_live_wrong")
    try:
        wrong.agents.list()
        raise AssertionError("a wrong key was accepted")
    except AuthenticationError:
        pass
    step("a wrong key -> AuthenticationError")

    print(f"quickstart passed with agenttrustid from {agenttrustid.__file__}")


if __name__ == "__main__":
    try:
        main()
    except Exception as error:  # noqa: BLE001 - the test prints whatever failed
        import traceback

        traceback.print_exc()
        print(f"quickstart FAILED: {error!r}", file=sys.stderr)
        sys.exit(1)
