"""The ingestion gateway as a real process (uvicorn on 127.0.0.1) against the real broker.

Every answer is checked as a provincial system sees it (status, body, headers) and against
what is in Kafka afterwards: a 202's records are readable at once; a refused batch left
nothing behind; a resend added no event id.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from infra.ports import free_port
from services.gateway.examples import CSV_EXAMPLES, EXAMPLES
from tests.conftest import Stack, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.kafka]


class Gateway:
    def __init__(self, stack: Stack, name: str, **settings: Any) -> None:
        self.name = name
        self.port = free_port()
        overrides: dict[str, Any] = {"gateway": {"port": self.port, **settings.pop("gateway", {})}}
        overrides.update(settings)
        self.proc = stack.spawn("services.gateway", name, overrides=overrides)
        self.stack = stack
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=60)

    def wait(self, path: str = "/readyz", status: int = 200) -> None:
        def answers() -> bool:
            assert self.proc.poll() is None, self.stack.log(self.name)
            try:
                return self.client.get(path).status_code == status
            except httpx.TransportError:
                return False

        wait_until(answers, timeout=90, what=f"{self.name} {path} -> {status}")

    def post(
        self, kind: str, key: str | None, records: Any = None, **kwargs: Any
    ) -> httpx.Response:
        headers = kwargs.pop("headers", {})
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        if records is not None:
            kwargs["json"] = {"records": records}
        return self.client.post(f"/v1/{kind}", headers=headers, **kwargs)

    def stop(self) -> None:
        self.client.close()
        self.proc.terminate()
        self.proc.wait(30)


def create_key(stack: Stack, province: str, note: str = "test") -> tuple[str, str]:
    """(key id, key) from `cctv keys create`."""
    done = stack.cctv("keys", "create", "--province", province, "--note", note)
    assert done.returncode == 0, done.stderr
    key_id = re.search(r"^key id\s+(\S+)$", done.stdout, re.M)
    key = re.search(r"^key\s+(cctv_\S+)$", done.stdout, re.M)
    assert key_id and key, done.stdout
    return key_id.group(1), key.group(1)


def camera(camera_id: str, province: str = "TH-50", **fields: Any) -> dict[str, Any]:
    return {
        "camera_id": camera_id,
        "province_code": province,
        "change": "REGISTERED",
        "owner_agency": "เทศบาลนครเชียงใหม่",
        "occurred_at": "2563-12-15 09:30",
        **fields,
    }


def test_202_only_once_every_record_is_in_kafka(stack: Stack) -> None:
    key_id, key = create_key(stack, "TH-50")
    gw = Gateway(stack, "gateway")
    gw.wait()
    answer = gw.post("cameras", key, [camera("CM-1"), camera("CM-2", latitude="18.8")])
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["accepted"] == 2 and len(set(body["event_ids"])) == 2
    # Read right after the 202, without waiting: both records are already there.
    in_kafka = stack.read_topic("camera_registrations")
    assert {r["event_id"] for r in in_kafka} == set(body["event_ids"])
    assert {r["producer"] for r in in_kafka} == {f"gateway-{key_id}"}

    # CSV, the same readers as `cctv publish`: a province name and a B.E. date are read.
    csv = (
        "camera_id,province_code,change,owner_agency,occurred_at\n"
        "CM-3,เชียงใหม่,registered,เทศบาล,2563-12-16 10:00\n"
    )
    answer = gw.post("cameras", key, content=csv.encode(), headers={"Content-Type": "text/csv"})
    assert answer.status_code == 202, answer.text
    # A bad CSV row: the answer names its line and field.
    bad_csv = csv + "CM-4,TH-50,ADDED,เทศบาล,2563-12-16 10:00\n"
    answer = gw.post("cameras", key, content=bad_csv.encode(), headers={"Content-Type": "text/csv"})
    assert answer.status_code == 422
    assert answer.json()["errors"] == [
        {
            "index": 1,
            "line": 3,
            "field": "change",
            "reason_code": "invalid_field",
            "message": "change: 'ADDED' is not one of REGISTERED, UPDATED, RETIRED",
        }
    ]
    assert len(stack.read_topic("camera_registrations")) == 3

    # No key, a wrong key: 401, nothing else said.
    assert gw.post("cameras", None, [camera("CM-5")]).status_code == 401
    assert gw.post("cameras", key[:-2] + "xx", [camera("CM-5")]).status_code == 401

    # The API is described, with an example body for each endpoint and content type.
    spec = gw.client.get("/openapi.json").json()
    for kind in ("cameras", "heartbeats", "selections", "projects"):
        operation = spec["paths"][f"/v1/{kind}"]["post"]
        content = operation["requestBody"]["content"]
        assert content["application/json"]["example"]["records"], kind
        assert content["text/csv"]["example"].count("\n") >= 2, kind
        assert {"202", "401", "403", "413", "422", "429", "503"} <= set(operation["responses"])
    assert gw.client.get("/docs").status_code == 200
    # ... and the examples are true: each is accepted as it stands.
    for kind in ("cameras", "heartbeats", "selections", "projects"):
        answer = gw.post(kind, key, EXAMPLES[kind]["records"])
        assert answer.status_code == 202, (kind, answer.text)
        answer = gw.post(
            kind, key, content=CSV_EXAMPLES[kind].encode(), headers={"Content-Type": "text/csv"}
        )
        assert answer.status_code == 202, (kind, answer.text)
    assert gw.client.get("/healthz").json() == {"status": "alive"}

    # The access log: one line per request, the key id, never the key.
    gw.stop()
    log = stack.log("gateway")
    assert '"path": "/v1/cameras", "status": 202, "key_id": "' + key_id in log
    assert '"province": "TH-50", "records": 2' in log
    assert log.count('"path": "/v1/') == 13  # one line per request
    assert key.split("_")[-1] not in log


def test_invalid_records_422_per_field_and_nothing_published(stack: Stack) -> None:
    _, key = create_key(stack, "TH-50")
    gw = Gateway(stack, "gateway")
    gw.wait()
    batch = [
        camera("CM-1"),
        camera("CM-2", change="ADDED", latitude="north"),
        camera("CM-3", owner_agency=""),
        "not a record",
    ]
    answer = gw.post("cameras", key, batch)
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert body["error"] == "invalid_records" and "all-or-nothing" in body["message"]
    assert [(e["index"], e["field"], e["reason_code"]) for e in body["errors"]] == [
        (1, "change", "invalid_field"),
        (1, "latitude", "invalid_field"),
        (2, "owner_agency", "missing_field"),
        (3, None, "undecodable"),
    ]
    assert all(e["message"] for e in body["errors"])
    # Mixed batch: the good record 0 was not published either.
    assert stack.read_topic("camera_registrations") == []

    # Money never through a float, more than two decimals refused, naming the field.
    project = {
        "province_code": "TH-50",
        "project_id": "P-1",
        "agency": "อบจ.เชียงใหม่",
        "title": "กล้อง",
        "kind": "procurement",
        "fiscal_year": 2565,
        "submitted_at": "2020-12-20T14:00:00+07:00",
    }
    answer = gw.post(
        "projects",
        key,
        content=b'{"records": [' + _json(project)[:-1] + b', "budget": 1.005}]}',
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 422, answer.text
    assert [e["field"] for e in answer.json()["errors"]] == ["budget"]
    answer = gw.post("projects", key, [project | {"budget": "10000000.50"}])
    assert answer.status_code == 202, answer.text
    (stored,) = stack.read_topic("project_submissions")
    assert str(stored["budget"]) == "10000000.50"

    # Bodies that are not batches: 400 / 415, never a 500.
    for content, ctype, status in [
        (b"\xff\xfe{", "application/json", 400),
        (b"[" * 100_000, "application/json", 400),
        (b'{"records": 1}', "application/json", 400),
        (b'{"records": []}', "application/json", 422),
        (b"<xml/>", "application/xml", 415),
        (b"camera_id,change\nCM-1,\x00\n", "text/csv", 422),
        (b'camera_id\n"' + b"a" * 140_000 + b'"\n', "text/csv", 400),
        (
            _json({"records": [camera("CM-1", resolution_width=10**6)]})[:-3] + b"e999999}]}",
            "application/json",
            422,
        ),
    ]:
        answer = gw.post("cameras", key, content=content, headers={"Content-Type": ctype})
        assert answer.status_code == status, (content[:20], answer.text)


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


def test_a_key_publishes_only_its_province(stack: Stack) -> None:
    _, key = create_key(stack, "TH-50")
    gw = Gateway(stack, "gateway")
    gw.wait()
    answer = gw.post("selections", key, [
        {"province_code": "TH-50", "campaign_id": "moi-cctv-2563", "camera_id": "C1",
         "action": "SELECT"},
        {"province_code": "Chiang Rai", "campaign_id": "moi-cctv-2563", "camera_id": "C2",
         "action": "SELECT"},
    ])  # fmt: skip
    assert answer.status_code == 403, answer.text
    (entry,) = answer.json()["errors"]
    assert (entry["index"], entry["province_code"], entry["reason_code"]) == (
        1,
        "TH-57",
        "foreign_province",
    )
    assert "TH-50" in entry["message"]
    assert stack.read_topic("selection_decisions") == []


def test_revoked_key_is_refused_by_another_replica(stack: Stack) -> None:
    key_id, key = create_key(stack, "TH-50")
    first, second = Gateway(stack, "gateway-a"), Gateway(stack, "gateway-b")
    first.wait()
    second.wait()
    assert first.post("cameras", key, [camera("CM-1")]).status_code == 202
    assert second.post("cameras", key, [camera("CM-2")]).status_code == 202
    done = stack.cctv("keys", "revoke", key_id)
    assert done.returncode == 0, done.stderr
    # Both replicas refuse it once they have read the revocation (bounded wait, no sleep).
    for gw in (second, first):
        wait_until(
            lambda gw=gw: gw.post("cameras", key, [camera("CM-3")]).status_code == 401,
            timeout=30,
            what=f"{gw.name} to refuse the revoked key",
        )
    listed = stack.cctv("keys", "list")
    assert re.search(rf"^{key_id}\s+TH-50\s+\S+ \S+\s+\d{{4}}-", listed.stdout, re.M), listed
    assert len(stack.read_topic("camera_registrations")) == 2


def test_size_limits_and_rate_limit(stack: Stack) -> None:
    _, key = create_key(stack, "TH-50")
    _, other = create_key(stack, "TH-50")
    gw = Gateway(
        stack,
        "gateway",
        gateway={
            "max_body_bytes": 2000,
            "max_records": 3,
            "rate_burst": 3,
            "rate_per_second": 0.01,
        },
    )
    gw.wait()
    big = gw.post("cameras", other, [camera(f"CM-{i}", owner_agency="x" * 1000) for i in range(3)])
    assert big.status_code == 413 and big.json()["error"] == "body_too_large"
    many = gw.post("cameras", other, [camera(f"CM-{i}") for i in range(4)])
    assert many.status_code == 413 and many.json()["error"] == "too_many_records"
    assert stack.read_topic("camera_registrations") == []

    for i in range(3):
        assert gw.post("cameras", key, [camera(f"CM-{i}")]).status_code == 202
    limited = gw.post("cameras", key, [camera("CM-9")])
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1
    # Per key: the other key still had a token left.
    assert gw.post("cameras", other, [camera("CM-10")]).status_code == 202


def test_kafka_unreachable_is_503_with_retry_after(stack: Stack) -> None:
    gw = Gateway(
        stack,
        "gateway",
        kafka={"bootstrap_servers": f"127.0.0.1:{free_port()}"},
        gateway={"delivery_timeout_seconds": 2, "retry_after_seconds": 7},
    )
    gw.wait("/healthz")
    ready = gw.client.get("/readyz")
    assert ready.status_code == 503 and ready.headers["Retry-After"] == "7"
    answer = gw.post("cameras", "cctv_" + "0" * 16 + "_" + "a" * 43, [camera("CM-1")])
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "7"
    assert answer.json()["error"] == "kafka_unavailable"


def test_kafka_stopped_is_503_and_nothing_is_lost_once_it_is_back(tmp_path: Path) -> None:
    """A private broker (the session's one stays untouched) is stopped under a running gateway:
    a batch gets 503 with Retry-After and no event id; the broker restarts on the same port
    and data directory; the same batch sent again gets 202, and Kafka holds every event of
    every accepted batch exactly once."""
    from infra.kafka.broker import KafkaBroker
    from infra.ports import free_ports

    port, controller = free_ports(2)
    broker = KafkaBroker(home=tmp_path / "kafka", port=port, controller_port=controller)
    broker.start(timeout=120)
    stack = Stack(root=tmp_path, bootstrap=broker.bootstrap, run_id=uuid.uuid4().hex[:10])
    try:
        stack.apply_topics()
        _, key = create_key(stack, "TH-50")
        gw = Gateway(
            stack, "gateway", gateway={"delivery_timeout_seconds": 3, "retry_after_seconds": 7}
        )
        gw.wait()
        before = [camera("CM-1", event_id=str(uuid.uuid4()))]
        assert gw.post("cameras", key, before).status_code == 202

        broker.stop()
        batch = [camera(f"CM-{i}", event_id=str(uuid.uuid4())) for i in range(2, 6)]
        headers = {"Idempotency-Key": "TH-50-while-kafka-is-down"}
        answer = gw.post("cameras", key, batch, headers=dict(headers))
        assert answer.status_code == 503, answer.text
        assert answer.headers["Retry-After"] == "7"
        body = answer.json()
        assert body["error"] == "kafka_unavailable"
        assert "event_ids" not in body and "accepted" not in body
        assert gw.client.get("/readyz").status_code == 503

        broker.start(timeout=120)  # same home: same port, same data
        gw.wait()  # ready again once the gateway sees the broker
        resend = gw.post("cameras", key, batch, headers=dict(headers))
        assert resend.status_code == 202, resend.text
        assert resend.json()["event_ids"] == [r["event_id"] for r in batch]

        stored = [r["event_id"] for r in stack.read_topic("camera_registrations")]
        expected = [r["event_id"] for r in before + batch]
        assert sorted(stored) == sorted(expected)  # each one, once
    finally:
        stack.stop_all()
        broker.stop()


def test_publisher_does_not_confirm_what_kafka_did_not_acknowledge() -> None:
    from cctv.settings import KafkaSettings
    from services.gateway.publisher import NotDelivered, Publisher

    publisher = Publisher(KafkaSettings(bootstrap_servers=f"127.0.0.1:{free_port()}"), timeout=1.5)
    try:
        with pytest.raises(NotDelivered, match="did not acknowledge 1 record"):
            asyncio.run(publisher.publish([("t", b"k", b"v")]))
    finally:
        publisher._stop.set()
        publisher._thread.join(5)


def test_resend_with_idempotency_key_duplicates_nothing_across_restart(stack: Stack) -> None:
    _, key = create_key(stack, "TH-50")
    gw = Gateway(stack, "gateway")
    gw.wait()
    own_id = "0b6f1f8e-3c0a-4d52-9a55-5d1c2f6b7e10"
    batch = [camera("CM-1"), camera("CM-2", event_id=own_id)]
    headers = {"Idempotency-Key": "TH-50-2020-12-15-001"}
    first = gw.post("cameras", key, batch, headers=dict(headers))
    assert first.status_code == 202, first.text
    ids = first.json()["event_ids"]
    assert ids[1] == own_id  # the client's own id is kept
    gw.stop()

    again = Gateway(stack, "gateway-restarted")
    again.wait()
    resend = again.post("cameras", key, batch, headers=dict(headers))
    assert resend.status_code == 202, resend.text
    assert resend.json() == first.json()
    assert resend.headers.get("Idempotent-Replayed") == "true"
    # The same key for another request is refused, naming the header.
    other = again.post("cameras", key, [camera("CM-3")], headers=dict(headers))
    assert other.status_code == 422
    assert other.json()["errors"][0]["field"] == "Idempotency-Key"

    records = stack.read_topic("camera_registrations")
    assert sorted(r["event_id"] for r in records) == sorted(ids)  # nothing new, no copy


def test_derived_event_ids_do_not_depend_on_the_replay_cache(stack: Stack) -> None:
    """Without its stored reply (another replica had not read it yet, or it expired), a resend
    is published again -- with the same event ids, which every stage treats as a replay."""
    _, key = create_key(stack, "TH-50")
    first = Gateway(stack, "gateway-a")
    first.wait()
    batch = [camera("CM-1"), camera("CM-2")]
    sent = first.post("cameras", key, batch, headers={"Idempotency-Key": "k-1"})
    assert sent.status_code == 202
    first.stop()
    # A fresh replies topic: the replica has no memory of the first answer.
    second = Gateway(
        stack,
        "gateway-b",
        kafka={"topics_file": str(_with_fresh_replies(stack))},
    )
    second.wait()
    resend = second.post("cameras", key, batch, headers={"Idempotency-Key": "k-1"})
    assert resend.status_code == 202 and "Idempotent-Replayed" not in resend.headers
    assert resend.json()["event_ids"] == sent.json()["event_ids"]
    records = stack.read_topic("camera_registrations")
    assert len(records) == 4 and len({r["event_id"] for r in records}) == 2


def _with_fresh_replies(stack: Stack) -> Path:
    from cctv.kafka import apply_topics
    from cctv.topics import TopicRegistry

    registry = yaml.safe_load(stack.topics_file.read_text(encoding="utf-8"))
    registry["topics"]["gateway_replies"]["name"] += ".fresh"
    path = stack.root / "topics-fresh.yaml"
    path.write_text(yaml.safe_dump(registry), encoding="utf-8")
    apply_topics(stack.settings().kafka, TopicRegistry.load(path), log=lambda _: None)
    return path


def test_fuzzing_the_openapi_spec_finds_no_server_error(stack: Stack) -> None:
    """schemathesis generates requests from /openapi.json (a few per endpoint): no 500, and
    every answer matches the documented statuses and bodies."""
    _, key = create_key(stack, "TH-50")
    gw = Gateway(stack, "gateway", gateway={"rate_burst": 10_000, "rate_per_second": 1000})
    gw.wait()
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "st"),
            "run",
            f"http://127.0.0.1:{gw.port}/openapi.json",
            "--header",
            f"Authorization: Bearer {key}",
            "--max-examples",
            "15",
            "--checks",
            "not_a_server_error,status_code_conformance,response_schema_conformance,"
            "content_type_conformance",
            "--request-timeout",
            "30",
        ],
        cwd=stack.root,  # schemathesis keeps a cache in its working directory
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert key.split("_")[-1] not in stack.log("gateway")
