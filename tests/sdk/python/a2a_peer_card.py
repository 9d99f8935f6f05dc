"""The official A2A Python SDK (`a2a-sdk`) as another party: it fetches an agent's published card
from the gateway, parses it into its own AgentCard type (the protocol's schema), checks the
detached JWS signature with its own verifier against the gateway's JWK Set, reads the ATI trust
extension, and sees a tampered copy fail. Prints `a2a_peer_card passed`.

Environment: AGENTTRUST_URL (the gateway), AGENT_ID (an agent with a published card),
AGENT_KEY_X (the x of the agent's registered Ed25519 key).
"""

import asyncio
import copy
import os

import httpx
from google.protobuf.json_format import MessageToDict
from jwt import PyJWK

from a2a.client.card_resolver import A2ACardResolver, parse_agent_card
from a2a.utils.signing import InvalidSignaturesError, create_signature_verifier

BASE = os.environ["AGENTTRUST_URL"].rstrip("/")
AGENT_ID = os.environ["AGENT_ID"]
KEY_X = os.environ["AGENT_KEY_X"]
TRUST_URI = "https://agenttrust.id/ext/trust/v1"


def key_provider(kid, jku):
    # The issuer we trust is the gateway we asked, whatever the card's `jku` says; it must
    # name the same set.
    assert jku == f"{BASE}/.well-known/jwks.json", jku
    jwks = httpx.get(f"{BASE}/.well-known/jwks.json").json()
    for key in jwks["keys"]:
        if key["kid"] == kid:
            return PyJWK(key)
    raise AssertionError(f"no key {kid} in the JWKS")


async def fetch():
    async with httpx.AsyncClient() as client:
        resolver = A2ACardResolver(
            client, BASE, agent_card_path=f"/a2a/agents/{AGENT_ID}/agent.json"
        )
        return await resolver.get_agent_card()


def main():
    card = asyncio.run(fetch())
    assert card.name, card
    interface = card.supported_interfaces[0]
    assert interface.url == f"{BASE}/a2a/agents/{AGENT_ID}", interface.url
    assert interface.protocol_binding == "JSONRPC"
    assert interface.protocol_version == "1.0"
    assert card.security_schemes["bearer"].http_auth_security_scheme.scheme == "bearer"
    trust = [ext for ext in card.capabilities.extensions if ext.uri == TRUST_URI]
    assert len(trust) == 1, card.capabilities
    params = MessageToDict(trust[0])["params"]
    assert 0 <= params["ati_trust_score"] <= 100, params
    assert params["ati_guardian_tier"] == "fast", params
    assert params["ati_agent_key"] == {"kty": "OKP", "crv": "Ed25519", "x": KEY_X}, params

    verify = create_signature_verifier(key_provider, ["ES256"])
    verify(card)

    raw = httpx.get(f"{BASE}/a2a/agents/{AGENT_ID}/agent.json").json()
    tampered = copy.deepcopy(raw)
    tampered["description"] = "a forged description"
    try:
        verify(parse_agent_card(tampered))
    except InvalidSignaturesError:
        pass
    else:
        raise AssertionError("a tampered card verified")
    print("a2a_peer_card passed")


if __name__ == "__main__":
    main()
