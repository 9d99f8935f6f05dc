"""Agent cards (wire-api.md §3.8) and A2A tasks (§3.9) through the official Python SDK
(`agenttrustid`): agent_cards.generate/get/publish/get_public, and a2a.send_task (a string
message), get_task and cancel_task (by `task_id`), a denied send raising AuthorizationError,
and send_message (v1.0 `message/send`) as an agent holding its token.

Reads AGENTTRUST_URL and AGENTTRUST_API_KEY (an admin key), asserts every answer, prints one
line per step and exits non-zero on the first failure.
"""

import json
import os
import sys
import urllib.error
import urllib.request
import uuid

import agenttrustid
from agenttrustid import AgentTrustClient
from agenttrustid.exceptions import AuthorizationError

BASE = os.environ["AGENTTRUST_URL"].rstrip("/")
KEY = os.environ["AGENTTRUST_API_KEY"]


def step(text):
    print(f"ok: {text}", flush=True)


def admin(method, path, body=None):
    """What the SDK has no call for (policies, tokens for a fresh client): raw HTTP."""
    request = urllib.request.Request(
        BASE + path,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"X-API-Key": KEY, "Content-Type": "application/json"},
        method=method,
    )
    return json.loads(urllib.request.urlopen(request).read() or b"{}")


def main():
    client = AgentTrustClient.from_env()
    suffix = uuid.uuid4().hex[:8]
    sender = client.agents.create(
        name=f"sender-{suffix}", framework="custom", capabilities=["a2a:send"]
    )
    receiver = client.agents.create(name=f"receiver-{suffix}", framework="custom")

    card = client.agent_cards.generate(receiver.id)
    assert card.name == receiver.name, card
    assert card.primary_url == f"{BASE}/a2a/agents/{receiver.id}", card.primary_url
    assert isinstance(card.trust_score, (int, float)) and 0 < card.trust_score <= 100, card
    assert card.signatures and card.signatures[0]["protected"], card
    assert client.agent_cards.get(receiver.id).name == receiver.name
    step("agent_cards.generate / get -> a signed card with a trust score")

    try:
        client.agent_cards.get_public(receiver.id)
        raise AssertionError("an unpublished card is public")
    except agenttrustid.exceptions.AgentTrustError as error:
        assert error.code == "NOT_FOUND", (error.code, str(error))
    published = client.agent_cards.publish(receiver.id)
    assert published.name == receiver.name, published
    public = client.agent_cards.get_public(receiver.id)
    assert public.primary_url == card.primary_url and public.trust_score == card.trust_score
    step("agent_cards.publish / get_public -> public only once published")

    task = client.a2a.send_task(
        source_agent_id=sender.id,
        target_agent_id=receiver.id,
        message="Summarize the latest security report",
        metadata={"priority": "high"},
    )
    assert task.id and task.status == "pending", task
    assert task.message == "Summarize the latest security report", task
    assert task.source_agent_id == sender.id and task.target_agent_id == receiver.id, task
    assert task.metadata == {"priority": "high"} and task.created_at is not None, task
    got = client.a2a.get_task(task.id)
    assert got.id == task.id and got.status == "pending", got
    cancelled = client.a2a.cancel_task(task.id)
    assert cancelled.status == "cancelled", cancelled
    step("a2a.send_task / get_task / cancel_task (task_id) -> pending, then cancelled")

    admin("PUT", "/api/v1/policies", {"rules": [
        {"id": "no-messages-to-receiver", "tools": [f"a2a:send:{receiver.id}"], "decision": "deny"}
    ]})
    try:
        client.a2a.send_task(source_agent_id=sender.id, target_agent_id=receiver.id, message="x")
        raise AssertionError("a denied message was sent")
    except AuthorizationError as error:
        assert "no-messages-to-receiver" in str(error), str(error)
    admin("PUT", "/api/v1/policies", {"rules": []})
    step("a2a.send_task denied -> AuthorizationError naming the rule")

    if hasattr(client.a2a, "send_message"):
        token = admin("POST", "/api/v1/agent-tokens/issue",
                      {"agent_id": sender.id, "scopes": ["a2a:send"], "ttl": 300})["token"]
        as_agent = AgentTrustClient(base_url=BASE)
        as_agent._http.set_auth(token)
        sent = as_agent.a2a.send_message(receiver.id, "hello from the sender")
        assert sent.id and sent.context_id and sent.state == "submitted", sent
        assert sent.history[0]["parts"][0]["text"] == "hello from the sender", sent
        step("a2a.send_message as the agent (its token) -> a v1.0 task, submitted")

    print(f"cards_a2a passed with agenttrustid from {agenttrustid.__file__}")


if __name__ == "__main__":
    try:
        main()
    except Exception as error:  # noqa: BLE001 - the test prints whatever failed
        import traceback

        traceback.print_exc()
        print(f"cards_a2a FAILED: {error!r}", file=sys.stderr)
        sys.exit(1)
