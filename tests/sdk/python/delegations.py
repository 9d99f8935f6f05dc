"""Delegations (wire-api.md §3.11) through the official Python SDK (`agenttrustid`).

An operator delegates `files:read` from agent A to B under `/tmp`, B's delegation session reads
`/tmp/x` but not `/etc/passwd`, B re-delegates to C, and revoking A→B ends C's access at once.
Also: the list, the chain (root-first, including the delegation itself), unknown keys of the
restrictions kept, and bad input as ValidationError / NOT_FOUND.

Reads AGENTTRUST_URL and AGENTTRUST_API_KEY (an admin key), asserts every answer, prints one
line per step and exits non-zero on the first failure.
"""

import sys
import uuid

import agenttrustid
from agenttrustid import AgentTrustClient
from agenttrustid.exceptions import AgentTrustError, ValidationError


def step(text):
    print(f"ok: {text}", flush=True)


def expect(error_type, code, call):
    try:
        call()
    except error_type as error:
        assert error.code == code, (error.code, str(error))
        return error
    raise AssertionError(f"expected {code}, the call succeeded")


def main():
    client = AgentTrustClient.from_env()
    suffix = uuid.uuid4().hex[:8]
    a = client.agents.create(name=f"a-{suffix}", capabilities=["files:read", "web:search"])
    b = client.agents.create(name=f"b-{suffix}")
    c = client.agents.create(name=f"c-{suffix}")

    # 1. A hands files:read to B, only under /tmp (an unknown key is kept as given).
    ab = client.delegations.create(
        from_agent_id=a.id,
        to_agent_id=b.id,
        scope=["files:read"],
        ttl_seconds=600,
        restrictions={"paths": ["/tmp/*"], "max_file_size": 1024},
    )
    assert ab.id and ab.from_agent_id == a.id and ab.to_agent_id == b.id, ab
    assert ab.scope == ["files:read"], ab
    assert ab.restrictions == {"paths": ["/tmp/*"], "max_file_size": 1024}, ab
    assert ab.delegation_chain == [ab.id], ab
    assert ab.revoked_at is None, ab
    assert ab.created_at.tzinfo is not None, ab
    assert (ab.expires_at - ab.created_at).total_seconds() == 600, ab
    step(f"delegations.create A->B {ab.id}")

    listed = {d.id: d for d in client.delegations.list()}
    assert ab.id in listed and listed[ab.id].scope == ["files:read"], listed
    step("delegations.list")

    # 2. B's session from the delegation: /tmp yes, /etc no.
    session = client.delegations.init_session(ab.id)
    assert session.session_id, session
    assert session.source == "a2a" and session.delegation_id == ab.id, session
    assert session.agent_id == b.id and session.scope_ceiling == ["files:read"], session
    step(f"delegations.init_session -> {session.session_id}")

    def read(agent, session_id, path):
        return client.actions.check(
            agent_id=agent.id,
            tool_name="read_file",
            tool_input_summary=path,
            session_id=session_id,
        )

    assert read(b, session.session_id, "/tmp/x").allowed
    denied = read(b, session.session_id, "/etc/passwd")
    assert not denied.allowed and denied.reason, denied
    step(f"B reads /tmp/x, not /etc/passwd ({denied.reason})")

    # 3. B re-delegates to C; the chain is root-first and includes the delegation itself.
    bc = client.delegations.create(
        from_agent_id=b.id,
        to_agent_id=c.id,
        scope=["files:read"],
        ttl_seconds=300,
        parent_delegation_id=ab.id,
    )
    assert bc.delegation_chain == [ab.id, bc.id], bc
    c_session = client.delegations.init_session(bc.id)
    assert c_session.agent_id == c.id, c_session
    assert read(c, c_session.session_id, "/tmp/y").allowed
    step(f"B -> C {bc.id}, C reads /tmp/y")

    # 4. Revoke A->B: C's access ends with it.
    assert client.delegations.revoke(ab.id) is None
    assert not read(c, c_session.session_id, "/tmp/y").allowed
    assert not read(b, session.session_id, "/tmp/x").allowed
    revoked = {d.id: d for d in client.delegations.list()}
    assert revoked[ab.id].revoked_at is not None and revoked[bc.id].revoked_at is not None, revoked
    step("delegations.revoke A->B: B and C are cut off")

    # 5. Bad input.
    escalation = expect(
        ValidationError,
        "VALIDATION_ERROR",
        lambda: client.delegations.create(from_agent_id=a.id, to_agent_id=b.id, scope=["files:write"]),
    )
    assert "scope escalation" in str(escalation), str(escalation)
    expect(
        ValidationError,
        "VALIDATION_ERROR",
        lambda: client.delegations.create(from_agent_id=a.id, to_agent_id=a.id, scope=["files:read"]),
    )
    expect(
        AgentTrustError,
        "NOT_FOUND",
        lambda: client.delegations.create(
            from_agent_id=a.id, to_agent_id=str(uuid.uuid4()), scope=["files:read"]
        ),
    )
    expect(AgentTrustError, "HTTP_409", lambda: client.delegations.init_session(bc.id))
    expect(AgentTrustError, "NOT_FOUND", lambda: client.delegations.revoke(str(uuid.uuid4())))
    step("bad input -> ValidationError / NOT_FOUND / HTTP_409")

    print(f"delegations passed with agenttrustid from {agenttrustid.__file__}")


if __name__ == "__main__":
    try:
        main()
    except Exception as error:  # noqa: BLE001 - the test prints whatever failed
        import traceback

        traceback.print_exc()
        print(f"delegations FAILED: {error!r}", file=sys.stderr)
        sys.exit(1)
