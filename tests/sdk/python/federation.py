"""Federation (wire-api.md §3.12) through the official Python SDK (`agenttrustid`).

The gateway is an OIDC issuer too, so it federates with itself: an ID token the gateway signs
for agent A (raw HTTP: the Python SDK has no issue call) is first verified as the gateway's own;
then the org registers the gateway's issuer as a provider with trust level `low` (the SDK's
register_provider, which makes the gateway fetch the discovery document), links the token's
subject to A, verifies the token through the provider (introspect_token and the deprecated
verify_token), opens a federation session (init_session) in which A may read but not write,
and deletes the provider, which ends the session. Bad tokens answer active=False with a reason;
a session from one is an AuthenticationError.

Reads AGENTTRUST_URL and AGENTTRUST_API_KEY (an admin key), asserts every answer, prints one
line per step and exits non-zero on the first failure.
"""

import json
import os
import sys
import urllib.request
import uuid

import agenttrustid
from agenttrustid import AgentTrustClient
from agenttrustid.exceptions import AuthenticationError


def step(text):
    print(f"ok: {text}", flush=True)


def post(path, body):
    """A raw POST with the admin key (for what the SDK does not cover)."""
    request = urllib.request.Request(
        os.environ["AGENTTRUST_URL"].rstrip("/") + path,
        data=json.dumps(body).encode(),
        headers={
            "X-API-Key": os.environ["AGENTTRUST_API_KEY"],
            "Content-Type": "application/json",
        },
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def main():
    client = AgentTrustClient.from_env()
    url = os.environ["AGENTTRUST_URL"].rstrip("/")
    suffix = uuid.uuid4().hex[:8]
    agent = client.agents.create(name=f"federated-{suffix}")
    audience = f"{url}/orgs/{agent.org_id}"

    issued = post("/api/v1/federation/tokens/issue", {"agent_id": agent.id, "audience": audience})
    token = issued["token"]
    assert "id_token" not in issued and issued["expires_in"] > 0, issued
    step("tokens/issue (raw HTTP)")

    own = client.federation.introspect_token(token)
    assert own.active is True and own.agent_id == agent.id, own
    assert own.issuer == url and own.expires_at is not None, own
    step("introspect_token: the gateway's own token")

    provider = client.federation.register_provider(issuer=url, name=f"self-{suffix}", trust_level="low")
    assert provider.id and provider.issuer == url, provider
    assert provider.jwks_uri == f"{url}/.well-known/jwks.json", provider
    assert provider.trust_level == "low" and provider.status == "active", provider
    assert provider.created_at is not None and provider.created_at.tzinfo is not None, provider
    step(f"register_provider {provider.id} (by discovery)")

    listed = {p.id: p for p in client.federation.list_providers()}
    assert provider.id in listed and listed[provider.id].issuer == url, listed
    step("list_providers")

    unlinked = client.federation.introspect_token(token)
    assert unlinked.active is True and unlinked.agent_id == "", unlinked
    post(f"/api/v1/federation/providers/{provider.id}/subjects", {"subject": agent.id, "agent_id": agent.id})
    linked = client.federation.verify_token(token, issuer_hint=url)
    assert linked.active is True and linked.agent_id == agent.id and linked.error == "", linked
    step("introspect/verify through the provider, once its subject is linked")

    session = client.federation.init_session(token)
    assert session.session_id and session.agent_id == agent.id, session
    assert session.source == "federation" and session.trust_level == "low", session
    assert session.provider_id == provider.id and session.issuer == url, session
    read = client.actions.check(agent_id=agent.id, tool_name="read_file", session_id=session.session_id)
    assert read.allowed is True, read
    write = client.actions.check(agent_id=agent.id, tool_name="write_file", session_id=session.session_id)
    assert write.allowed is False and "trusted at level low" in write.reason, write
    step("init_session: a low-trust session reads and cannot write")

    flipped = "A" if token[-10] != "A" else "B"
    tampered = token[:-10] + flipped + token[-9:]
    for bad, reason in [("not-a-jwt", "malformed token"), (tampered, "bad signature")]:
        answer = client.federation.introspect_token(bad)
        assert answer.active is False and answer.error.startswith(reason), (bad, answer)
    hinted = client.federation.introspect_token(token, issuer_hint="https://elsewhere.example")
    assert hinted.active is False and hinted.error == "unknown issuer", hinted
    try:
        client.federation.init_session("not-a-jwt")
        raise AssertionError("a session was opened from a malformed token")
    except AuthenticationError as error:
        assert "malformed" in str(error), error
    step("bad tokens: active=False with a reason; no session")

    client.federation.delete_provider(provider.id)
    assert provider.id not in {p.id for p in client.federation.list_providers()}
    ended = client.actions.check(agent_id=agent.id, tool_name="read_file", session_id=session.session_id)
    assert ended.allowed is False, ended
    step("delete_provider ends its sessions")

    print(f"federation passed with agenttrustid from {agenttrustid.__file__}")


if __name__ == "__main__":
    try:
        main()
    except Exception as error:  # noqa: BLE001 - the test prints whatever failed
        import traceback

        traceback.print_exc()
        print(f"federation FAILED: {error!r}", file=sys.stderr)
        sys.exit(1)
