"""The subcommittee mailer against a real Kafka broker and a real SMTP server (aiosmtpd).

Routings are published as the routing agent publishes them (valid v2 records, encoded with the
project's codec); the mailer runs as its own process (`python -m services.mailer`), as in
production. The SMTP server is aiosmtpd on 127.0.0.1: plain, STARTTLS with AUTH, or implicit
TLS with AUTH, with a certificate made for the test. "Down" is a closed port on 127.0.0.1.

Every check waits for an outcome (mails in the inbox, the group's committed offsets at the
topic's end, a dead letter on its topic), bounded, never for a length of time.
"""

from __future__ import annotations

import datetime as dt
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import KafkaException, TopicPartition

from cctv import kafka as kafka_clients
from cctv.settings import CONFIG_DIR
from infra.ports import free_port
from tests.conftest import TEST_PARTITIONS, Stack, wait_until
from tests.routing_samples import BANGKOK, routing
from tests.smtp_server import Inbox, Received, SmtpServer, self_signed

pytestmark = [
    pytest.mark.integration,
    pytest.mark.kafka,
    # aiosmtpd counts only STARTTLS as TLS; its implicit-TLS server is encrypted all the same.
    pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning"),
]

MAIL_TO = ["subcommittee@moi.example", "secretary@moi.example"]
SENDER = "cctv-backbone@moi.example"
PASSWORD = "pw-Th41-smtp-!x9"
# 25 Dec 2563 08:30 Bangkok time: after the subcommittee's send-by day.
BANGKOK_LATE = dt.datetime(2020, 12, 25, 8, 30, tzinfo=BANGKOK)


# -- helpers ------------------------------------------------------------------------------------


def configure(stack: Stack, *, port: int, **mailer: Any) -> None:
    """Point the stack's processes at the SMTP server on `port`, with a campaign whose
    subcommittee address is MAIL_TO."""
    campaign = yaml.safe_load((CONFIG_DIR / "campaigns" / "moi-2563.yaml").read_text("utf-8"))
    campaign["routing"]["national_subcommittee"]["mail_to"] = MAIL_TO
    path = stack.root / "campaign.yaml"
    path.write_text(yaml.safe_dump(campaign, allow_unicode=True), encoding="utf-8")
    stack.overrides.update(
        {
            "campaign_file": str(path),
            "data_dir": str(stack.root / "data"),
            "mailer": {
                "smtp_host": "127.0.0.1",
                "smtp_port": port,
                "security": "none",
                "from_address": SENDER,
                "group_id": f"mailer-{stack.run_id}",
                "instance_id": "test",
                "retry_max_seconds": 1.0,
                "timeout_seconds": 10.0,
            }
            | mailer,
        }
    )


def publish(stack: Stack, *items: dict[str, Any] | bytes) -> None:
    codec = stack.context().codec
    values = [
        (b"junk", item)
        if isinstance(item, bytes)
        else (item["project_id"].encode(), codec.encode("project_routing", item))
        for item in items
    ]
    stack.produce("project_routing", values)


def committed(stack: Stack, group: str | None = None) -> list[tuple[int, int, int]]:
    """(partition, committed offset or -1001, end offset) of the mailer's group."""
    ctx = stack.context()
    name = ctx.topics["project_routing"].name
    consumer = kafka_clients.consumer(
        ctx.settings.kafka,
        group_id=group or ctx.settings.mailer.group_id,
        client_suffix="test-offsets",
    )
    try:
        # A broker that just started may answer NOT_COORDINATOR while it loads the group.
        answer = wait_until(
            lambda: _committed_once(consumer, name), timeout=60, what="the group coordinator"
        )
        result = []
        for tp in answer:
            end = consumer.get_watermark_offsets(TopicPartition(name, tp.partition), timeout=15)[1]
            result.append((tp.partition, tp.offset, end))
        return result
    finally:
        consumer.close()


def _committed_once(consumer: Any, name: str) -> list[TopicPartition] | None:
    try:
        return consumer.committed(
            [TopicPartition(name, p) for p in range(TEST_PARTITIONS)], timeout=15
        )
    except KafkaException:
        return None


def wait_all_committed(stack: Stack, group: str | None = None, timeout: float = 120) -> None:
    """Every routing on the topic processed: the group's offsets are at the topic's end."""
    try:
        wait_until(
            lambda: all(end == 0 or offset == end for _, offset, end in committed(stack, group)),
            timeout=timeout,
            what="the mailer to commit every routing",
        )
    except pytest.fail.Exception:
        pytest.fail(f"offsets {committed(stack, group)}" + stack.process_logs())


def versions(mails: list[Received]) -> Counter[tuple[str, int]]:
    return Counter(
        (m.header("X-CCTV-Project-Id"), int(m.header("X-CCTV-Routing-Version"))) for m in mails
    )


def wait_for_mails(stack: Stack, inbox: Inbox, count: int, timeout: float = 90) -> list[Received]:
    try:
        wait_until(lambda: len(inbox.received()) >= count, timeout=timeout, what=f"{count} mails")
    except pytest.fail.Exception:
        pytest.fail(f"mails: {versions(inbox.received())}" + stack.process_logs())
    return inbox.received()


@pytest.fixture
def smtp(stack: Stack):
    port = free_port()
    with SmtpServer(port) as server:
        configure(stack, port=port)
        yield server


# -- what is sent ---------------------------------------------------------------------------------


def test_each_subcommittee_routing_version_is_mailed_once(stack: Stack, smtp: SmtpServer) -> None:
    campaign = stack.context().campaign
    first = routing(campaign, "CM-2565-001")
    provincial_only = routing(campaign, "CM-2565-002", budget="10000000.00")
    resubmitted = routing(
        campaign, "CM-2565-001", version=2, supersedes=first["event_id"], budget="15000000.00"
    )
    late = routing(
        campaign,
        "CR-2565-003",
        province_code="TH-57",
        submitted_at=BANGKOK_LATE,
        agency="องค์การบริหารส่วนจังหวัดเชียงราย",
    )
    publish(stack, first, provincial_only, b"not avro at all", resubmitted, late)
    mailer = stack.spawn("services.mailer", "mailer")
    wait_all_committed(stack)

    mails = smtp.inbox.received()
    assert versions(mails) == {("CM-2565-001", 1): 1, ("CM-2565-001", 2): 1, ("CR-2565-003", 1): 1}
    by_version = {
        (m.header("X-CCTV-Project-Id"), m.header("X-CCTV-Routing-Version")): m for m in mails
    }
    v1, v2, cr = (
        by_version["CM-2565-001", "1"],
        by_version["CM-2565-001", "2"],
        by_version["CR-2565-003", "1"],
    )
    for mail in mails:
        assert mail.rcpt_tos == tuple(MAIL_TO) and mail.mail_from == SENDER
        assert "เรียน คณะอนุกรรมการกำหนดแผนบริหารจัดการระบบการเชื่อมโยง" in mail.body
    assert "งบประมาณ (budget): 10,000,001.00 บาท" in v1.body
    assert "งบประมาณ (budget): 15,000,000.00 บาท" in v2.body
    assert "it supersedes the earlier version" in v2.body
    assert f"แทน (supersedes) routing event {first['event_id']}" in v2.body
    assert v2.header("In-Reply-To") == v1.message_id != v2.message_id
    assert "จังหวัด (province): เชียงราย (Chiang Rai, TH-57)" in cr.body
    assert "ส่งล่าช้า (late): ใช่ (yes)" in cr.body and "ยื่นหลังกำหนดส่งถึงคณะอนุกรรมการฯ" in cr.body

    (letter,) = stack.read_topic("dead_letters", expect=1)
    assert (letter["reason_code"], letter["processor"]) == ("undecodable", "mailer")
    assert letter["payload"] == b"not avro at all"
    assert "mailed project CM-2565-001 version 2" in stack.log("mailer")

    mailer.terminate()
    assert mailer.wait(30) == 0
    assert "mailer stopped: 3 mailed" in stack.log("mailer")

    # Offsets lost (a new group, as after Kafka expired the idle group's offsets): the journal
    # still knows every version it mailed.
    stack.overrides["mailer"]["group_id"] = f"mailer-{stack.run_id}-again"
    stack.spawn("services.mailer", "mailer-again")
    wait_all_committed(stack)
    assert versions(smtp.inbox.received()) == versions(mails)
    assert stack.log("mailer-again").count("; not again") == 3
    letters = stack.read_topic("dead_letters", expect=2)  # written again: the same dead letter
    assert len({d["event_id"] for d in letters}) == 1


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_tls_and_login_and_the_password_never_logged(
    stack: Stack, tmp_path: Path, security: str
) -> None:
    cert = self_signed(tmp_path / "tls")
    port = free_port()
    with SmtpServer(port, security=security, cert=cert, credentials=("cctv", PASSWORD)) as server:
        wrong = "wrong-" + PASSWORD[::-1]
        configure(
            stack,
            port=port,
            security=security,
            ca_file=str(cert[0]),
            username="cctv",
            password=wrong,
        )
        publish(stack, routing(stack.context().campaign, "CM-TLS-1"))
        refused = stack.spawn("services.mailer", "mailer-wrong-password")
        wait_until(
            lambda: (
                stack.log("mailer-wrong-password").count("refused the login of user 'cctv'") >= 2
            ),
            timeout=60,
            what="the login to be refused twice",
        )
        assert all(offset < 0 for _, offset, _ in committed(stack)), "committed without a mail"
        refused.terminate()
        assert refused.wait(30) == 0

        stack.overrides["mailer"]["password"] = PASSWORD
        stack.spawn("services.mailer", "mailer")
        wait_all_committed(stack)
        (mail,) = server.inbox.received()
        assert mail.tls and mail.authenticated_as == "cctv"
        assert mail.header("X-CCTV-Project-Id") == "CM-TLS-1"

    logs = stack.log("mailer-wrong-password") + stack.log("mailer")
    assert f"{security}, user cctv" in logs
    for secret in (PASSWORD, wrong):
        assert secret not in logs
    shown = stack.cctv("settings")
    assert shown.returncode == 0, shown.stderr
    assert PASSWORD not in shown.stdout + shown.stderr
    assert "password: '**********'" in shown.stdout


# -- restarts ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "failpoint",
    ["mailer.before_send", "mailer.after_send", "mailer.after_journal", "mailer.after_commit"],
)
def test_sigkill_and_restart_mails_each_version_once_but_in_the_documented_window(
    stack: Stack, smtp: SmtpServer, failpoint: str
) -> None:
    campaign = stack.context().campaign
    a1 = routing(campaign, "CM-K-1")
    records = [
        a1,
        routing(campaign, "CM-K-1", version=2, supersedes=a1["event_id"]),
        routing(campaign, "CM-K-2", budget="20000000.00"),
        routing(campaign, "CM-K-3", budget="10000001.01", province_code="TH-57"),
        routing(campaign, "CM-K-4", budget="900.00"),  # not for the subcommittee
    ]
    publish(stack, *records)
    stack.overrides["failpoints"] = {failpoint: 2}
    killed = stack.spawn("services.mailer", "mailer-killed")
    assert killed.wait(120) == -signal.SIGKILL, stack.process_logs()

    stack.overrides["failpoints"] = {}
    stack.spawn("services.mailer", "mailer")
    wait_all_committed(stack)

    mails = smtp.inbox.received()
    counts = versions(mails)
    expected = {("CM-K-1", 1), ("CM-K-1", 2), ("CM-K-2", 1), ("CM-K-3", 1)}
    assert set(counts) == expected
    if failpoint == "mailer.after_send":
        # The one window: accepted by the server, killed before the journal. Sent again --
        # recognisably the same mail.
        twice = [key for key, n in counts.items() if n == 2]
        assert len(twice) == 1 and sum(counts.values()) == 5, counts
        copies = [
            m
            for m in mails
            if (m.header("X-CCTV-Project-Id"), int(m.header("X-CCTV-Routing-Version"))) == twice[0]
        ]
        assert copies[0].message_id == copies[1].message_id
        assert copies[0].body == copies[1].body
    else:
        assert all(n == 1 for n in counts.values()), counts
    if failpoint == "mailer.after_journal":
        # Killed between the journal and the commit: read again, found, not sent again.
        assert stack.log("mailer").count("; not again") == 1


def test_smtp_server_down_retries_without_committing_then_delivers(stack: Stack) -> None:
    port = free_port()  # nothing listens here yet: connections are refused
    configure(stack, port=port)
    publish(stack, routing(stack.context().campaign, "CM-DOWN-1"))
    stack.spawn("services.mailer", "mailer")
    wait_until(
        lambda: stack.log("mailer").count("not committed, retrying") >= 3,
        timeout=60,
        what="three refused attempts",
    )
    assert "ConnectionRefusedError" in stack.log("mailer")
    assert all(offset < 0 for _, offset, _ in committed(stack)), committed(stack)

    with SmtpServer(port) as server:
        wait_all_committed(stack)
        (mail,) = server.inbox.received()
    assert mail.header("X-CCTV-Project-Id") == "CM-DOWN-1"
    assert "delivered again after" in stack.log("mailer")


def test_permanent_refusals_become_dead_letters_and_the_mailer_carries_on(
    stack: Stack, smtp: SmtpServer
) -> None:
    campaign = stack.context().campaign
    inbox = smtp.inbox
    codec = stack.context().codec
    mailer = stack.spawn("services.mailer", "mailer")

    # Every recipient refused (5xx): a dead letter naming the field.
    inbox.refuse_rcpt = dict.fromkeys(MAIL_TO, "550 5.1.1 mailbox unavailable")
    refused = routing(campaign, "CM-R-1")
    publish(stack, refused)
    (letter,) = stack.read_topic("dead_letters", expect=1)
    assert (letter["reason_code"], letter["field"]) == ("mail_recipient_refused", "mail_to")
    assert "550 5.1.1 mailbox unavailable" in letter["error"]
    assert codec.decode(letter["payload"]).record["project_id"] == "CM-R-1"
    assert letter["province_code"] == "TH-50"

    # The message itself refused (5xx after DATA).
    inbox.refuse_rcpt = {}
    inbox.refuse_data = "554 5.6.0 message content rejected"
    publish(stack, routing(campaign, "CM-R-2"))
    letters = stack.read_topic("dead_letters", expect=2)
    assert {(d["reason_code"], d["field"]) for d in letters} == {
        ("mail_recipient_refused", "mail_to"),
        ("mail_rejected", "message"),
    }

    # One recipient refused: the others get the mail, the refusal is a dead letter.
    inbox.refuse_data = None
    inbox.refuse_rcpt = {MAIL_TO[1]: "550 5.1.1 no such user"}
    publish(stack, routing(campaign, "CM-R-3"))
    letters = stack.read_topic("dead_letters", expect=3)
    assert "no such user" in letters[-1]["error"] or any(
        "no such user" in d["error"] for d in letters
    )

    # ... and the mailer still runs: the next routing is mailed.
    inbox.refuse_rcpt = {}
    publish(stack, routing(campaign, "CM-R-4"))
    wait_all_committed(stack)
    assert mailer.poll() is None
    mails = inbox.received()
    assert versions(mails) == {("CM-R-3", 1): 1, ("CM-R-4", 1): 1}
    partial = next(m for m in mails if m.header("X-CCTV-Project-Id") == "CM-R-3")
    assert partial.rcpt_tos == (MAIL_TO[0],)
