"""SIEM streaming (wire-api.md §3.13) through the official Python SDK (`agenttrustid`).

A local webhook receiver (http.server on 127.0.0.1) stands in for the SIEM. The script creates a
destination pointing at it (streaming.create, with an auth token), reads it back (get, list:
the token masked), changes it (update: a PUT of the given fields only), sends a test event
(test: success and status_code, the receiver saw one signed `siem.test` event), reads the
delivery log (delivery_log: one success record with an RFC 3339 delivered_at), and deletes it
(delete; get is then a 404).

Reads AGENTTRUST_URL and AGENTTRUST_API_KEY (an admin key), asserts every answer, prints one
line per step and exits non-zero on the first failure.
"""

import hashlib
import hmac
import json
import sys
import threading
import uuid
from datetime import datetime
from http.server import BaseHTTPRequestHandler, HTTPServer

import agenttrustid
from agenttrustid import AgentTrustClient
from agenttrustid.exceptions import AgentTrustError

SECRET = "python-webhook-secret"
RECEIVED = []


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        RECEIVED.append((dict(self.headers), body))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


def step(text):
    print(f"ok: {text}", flush=True)


def main():
    server = HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}/hook"

    client = AgentTrustClient.from_env()
    name = f"hook-{uuid.uuid4().hex[:8]}"
    created = client.streaming.create(
        name=name,
        destination_type="webhook",
        endpoint_url=endpoint,
        auth_token=SECRET,
        batch_size=10,
        flush_interval_seconds=60,
        filter_event_types=["check.decided"],
    )
    assert created.id and created.name == name, created
    assert created.destination_type == "webhook" and created.is_active is True, created
    assert created.batch_size == 10 and created.flush_interval_seconds == 60, created
    assert created.filter_event_types == ["check.decided"], created
    assert created.auth_token == "********", created
    assert created.created_at is not None, created
    step("streaming.create")

    got = client.streaming.get(created.id)
    assert got.id == created.id and got.auth_token == "********", got
    listed = client.streaming.list()
    assert created.id in {destination.id for destination in listed}, listed
    assert all(SECRET not in repr(destination) for destination in listed)
    step("streaming.get / list: the token masked")

    updated = client.streaming.update(created.id, batch_size=20, is_active=False)
    assert updated.batch_size == 20 and updated.is_active is False, updated
    assert updated.flush_interval_seconds == 60 and updated.name == name, updated
    step("streaming.update (partial PUT)")

    result = client.streaming.test(created.id)
    assert result["success"] is True and result["status_code"] == 200, result
    assert len(RECEIVED) == 1, RECEIVED
    headers, body = RECEIVED[0]
    headers = {key.lower(): value for key, value in headers.items()}
    timestamp, signature = headers["x-agenttrust-signature"].removeprefix("t=").split(",v1=")
    expected = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(signature, expected), headers
    batch = json.loads(body)
    assert batch["events"][0]["kind"] == "siem.test", batch
    assert batch["events"][0]["schema"] == "agenttrust.audit.v1", batch
    step("streaming.test: one signed test event delivered")

    records = client.streaming.delivery_log(created.id)
    assert len(records) == 1, records
    record = records[0]
    assert record.status == "success" and record.status_code == 200, record
    assert record.destination_id == created.id and record.batch_size == 1, record
    assert isinstance(record.delivered_at, datetime), record
    step("streaming.delivery_log")

    client.streaming.delete(created.id)
    try:
        client.streaming.get(created.id)
        raise AssertionError("a deleted destination is still there")
    except AgentTrustError as error:
        assert "not found" in str(error).lower(), error
    step("streaming.delete")

    server.shutdown()
    print(f"streaming passed with agenttrustid from {agenttrustid.__file__}")


if __name__ == "__main__":
    try:
        main()
    except Exception as error:  # noqa: BLE001 - the test prints whatever failed
        import traceback

        traceback.print_exc()
        print(f"streaming FAILED: {error!r}", file=sys.stderr)
        sys.exit(1)
