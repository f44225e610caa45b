"""The subcommittee mailer: project routings from Kafka -> one e-mail per routing version.

For each project_routing whose destinations include NATIONAL_SUBCOMMITTEE, one mail to the
campaign's `routing.national_subcommittee.mail_to` (services/mailer/message.py). A routing
that does not go to the subcommittee sends nothing; one that cannot be read, or whose mail the
SMTP server permanently refuses, becomes a dead letter and the mailer carries on.

Order of work per routing, one at a time, in partition order:

1. decode (undecodable -> dead letter); not for the subcommittee -> nothing to do;
2. already in the journal -> nothing to do (mailed before the last crash or rebalance);
3. hand the mail to the SMTP server (transient failure -> retry with backoff, nothing
   committed, every partition paused meanwhile; permanent refusal -> dead letter);
4. the server accepted: append (project, version, Message-ID) to the journal and fsync;
5. commit the routing's offset.

**The guarantee.** No routing version is lost: its offset is committed only after step 4 (or
after its dead letter was acknowledged by Kafka), so any crash before that redelivers it.
None is mailed twice, except in one window: a crash (or a lost connection) after the SMTP
server accepted the message and before the journal entry reached the disk -- including a reply
to the final DATA that never arrived. Then the mail is sent again, with the *same* Message-ID
(derived from campaign, project and version), which mail servers, archives and clients use to
recognise the copy. A crash after step 4 re-reads the routing and finds it in the journal.
The journal also covers what offsets alone cannot: a failed commit, and consumer-group offsets
that expired while the mailer was stopped (the topic keeps routings longer than Kafka keeps
an idle group's offsets by default).

The journal is local to one mailer (its `mailer.journal_dir`): run one mailer per group. A
second copy in the same group would take partitions whose journal it does not have; it would
still skip everything committed, so only that one crash window would widen.
"""

from __future__ import annotations

import datetime as dt
import logging
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from confluent_kafka import KafkaException, TopicPartition

from cctv import kafka as kafka_clients
from cctv.campaign import Campaign
from cctv.deadletter import dead_letter
from cctv.exceptions import InputError, KafkaError
from cctv.failpoints import DISARMED, Failpoints
from cctv.provinces import Provinces
from cctv.settings import MailerSettings, Settings
from cctv.topics import TopicRegistry
from schemas.codec import AvroCodec
from schemas.errors import SchemaError
from services.mailer import smtp
from services.mailer.journal import JournalEntry, MailJournal, now_iso
from services.mailer.message import compose, goes_to_subcommittee, message_id

log = logging.getLogger("cctv.mailer")
PROCESSOR = "mailer"
SCHEMA = "project_routing"
_KAFKA_TIMEOUT = 30.0
_FIRST_DELAY = 0.5

Sender = Callable[[MailerSettings, EmailMessage], dict[str, str]]


@dataclass
class MailerStats:
    consumed: int = 0
    mailed: int = 0
    already_mailed: int = 0  # found in the journal: mailed before a crash or rebalance
    not_for_subcommittee: int = 0
    dead_lettered: int = 0
    deferred: int = 0  # attempts the SMTP server or Kafka did not complete

    def summary(self) -> str:
        return (
            f"{self.mailed} mailed, {self.already_mailed} already mailed, "
            f"{self.not_for_subcommittee} not for the subcommittee, "
            f"{self.dead_lettered} dead letters, {self.deferred} deferred attempts, "
            f"{self.consumed} routings read"
        )


class _Retry(Exception):
    """A routing could not be finished now; its offset stays uncommitted."""

    def __init__(self, message: str, *, configuration: bool = False):
        super().__init__(message)
        self.configuration = configuration


class SubcommitteeMailer:
    def __init__(
        self,
        *,
        settings: Settings,
        campaign: Campaign,
        provinces: Provinces,
        topics: TopicRegistry,
        codec: AvroCodec,
        journal: MailJournal,
        failpoints: Failpoints | None = None,
    ):
        self.settings = settings
        self.cfg = settings.mailer
        self.campaign = campaign
        self.provinces = provinces
        self.codec = codec
        self.journal = journal
        self.stats = MailerStats()
        self._failpoints = failpoints or DISARMED
        self._stop = threading.Event()
        self._topic = topics[SCHEMA].name
        self._dlq_topic = topics["dead_letters"].name
        self._assigned: set[tuple[str, int]] = set()
        self._pending: Any = None  # the message being retried
        self._retry_at = 0.0
        self._delay = _FIRST_DELAY
        instance = self.cfg.instance_id or socket.gethostname()
        self._consumer = kafka_clients.consumer(
            settings.kafka,
            group_id=self.cfg.group_id,
            client_suffix="mailer",
            **{
                "session.timeout.ms": int(self.cfg.session_timeout_seconds * 1000),
                # Static membership: a restarted mailer takes its partitions back at once.
                "group.instance.id": f"{self.cfg.group_id}.{instance}",
            },
        )
        self._producer = kafka_clients.producer(settings.kafka, client_suffix="mailer")
        self._send: Sender = lambda cfg, msg: smtp.send(
            cfg, msg, recipients=campaign.routing.national_subcommittee.mail_to
        )

    # -- lifecycle ---------------------------------------------------------------------------
    def stop(self, *_: Any) -> None:
        self._stop.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def run(self, *, max_idle_seconds: float | None = None) -> MailerStats:
        self._consumer.subscribe(
            [self._topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_revoke,
        )
        idle_since = time.monotonic()
        try:
            while not self._stop.is_set():
                if self._pending is not None:
                    wait = self._retry_at - time.monotonic()
                    if wait > 0:
                        # Partitions are paused: poll only serves the group and callbacks.
                        self._park(self._consumer.poll(min(wait, 0.5)))
                        continue
                    msg, self._pending = self._pending, None
                    self._handle(msg)
                    continue
                msg = self._consumer.poll(0.5)
                if msg is None:
                    if not self._assigned:
                        idle_since = time.monotonic()
                    elif max_idle_seconds is not None:
                        if time.monotonic() - idle_since >= max_idle_seconds:
                            break
                    continue
                idle_since = time.monotonic()
                self._handle(msg)
        finally:
            self._consumer.close()
            self._producer.flush(10)
        return self.stats

    def _on_assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        self._assigned |= {(tp.topic, tp.partition) for tp in partitions}

    def _on_revoke(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        revoked = {(tp.topic, tp.partition) for tp in partitions}
        self._assigned -= revoked
        pending = self._pending
        if pending is not None and (pending.topic(), pending.partition()) in revoked:
            # The partition's next owner (maybe us again) starts from the committed offset.
            self._pending = None
            self._resume()

    def _park(self, msg: Any) -> None:
        """A message fetched before the partitions were paused: read it again later."""
        if msg is not None and not msg.error():
            self._consumer.seek(TopicPartition(msg.topic(), msg.partition(), msg.offset()))

    def _pause(self) -> None:
        parts = [TopicPartition(t, p) for t, p in self._assigned]
        if parts:
            self._consumer.pause(parts)

    def _resume(self) -> None:
        parts = [TopicPartition(t, p) for t, p in self._assigned]
        if parts:
            self._consumer.resume(parts)

    # -- one routing -------------------------------------------------------------------------
    def _handle(self, msg: Any) -> None:
        if msg.error():
            log.warning("kafka: %s", msg.error())
            return
        if (msg.topic(), msg.partition()) not in self._assigned:
            return
        retried = self._retry_at > 0
        try:
            self._process(msg)
        except _Retry as exc:
            self.stats.deferred += 1
            log.log(
                logging.ERROR if exc.configuration else logging.WARNING,
                "%s; routing %s[%d]@%d not committed, retrying in %.1f s",
                exc,
                msg.topic(),
                msg.partition(),
                msg.offset(),
                self._delay,
            )
            self._pending = msg
            self._pause()
            self._retry_at = time.monotonic() + self._delay
            self._delay = min(self._delay * 2, self.cfg.retry_max_seconds)
            return
        if retried:
            log.info("delivered again after %d deferred attempt(s)", self.stats.deferred)
            self._resume()
        self._retry_at = 0.0
        self._delay = _FIRST_DELAY

    def _process(self, msg: Any) -> None:
        self.stats.consumed += 1
        try:
            routing = self.codec.decode(msg.value() or b"", expected=SCHEMA).record
        except SchemaError as exc:
            if getattr(exc, "reason_code", None) == "schema_registry_unavailable" and (
                self.codec.uses_confluent_framing
            ):
                # The registry is down: every Confluent-framed routing would fail alike. Wait
                # it out (as the worker does) instead of draining the topic into dead letters.
                # Without a registry configured, nothing will ever read it: a dead letter.
                raise _Retry(f"cannot decode: {exc}") from exc
            self._dead_letter(msg, exc)
            return
        if not goes_to_subcommittee(routing):
            self.stats.not_for_subcommittee += 1
            log.debug("routing %s of %s: not for the subcommittee", routing["event_id"],
                      routing["project_id"])  # fmt: skip
            self._commit(msg)
            return
        try:
            mail = compose(
                routing,
                campaign=self.campaign,
                provinces=self.provinces,
                sender=self.cfg.from_address,
                previous_message_id=self._previous_message_id(routing),
            )
        except InputError as exc:
            self._dead_letter(msg, exc, province_code=routing.get("province_code"))
            return
        done = self.journal.get(mail.key)
        if done is not None:
            self.stats.already_mailed += 1
            log.info(
                "project %s version %d was mailed at %s (Message-ID %s); not again",
                mail.project_id,
                mail.routing_version,
                done.sent_at,
                done.message_id,
            )
            if done.refused:  # its dead letter may not have been written before a crash
                self._dead_letter(msg, _partly_refused(done.refused), commit=False)
            self._commit(msg)
            return
        self._failpoints.hit("mailer.before_send")
        try:
            refused = self._send(self.cfg, mail.email())
        except smtp.MailDeferred as exc:
            raise _Retry(str(exc), configuration=exc.configuration) from exc
        except smtp.MailRefused as exc:
            self._dead_letter(msg, exc, province_code=routing["province_code"])
            return
        self._failpoints.hit("mailer.after_send")
        self.journal.record(
            JournalEntry(
                campaign_id=mail.campaign_id,
                project_id=mail.project_id,
                routing_version=mail.routing_version,
                message_id=mail.message_id,
                recipients=list(mail.recipients),
                refused=refused,
                sent_at=now_iso(),
                topic=msg.topic(),
                partition=msg.partition(),
                offset=msg.offset(),
            )
        )
        self._failpoints.hit("mailer.after_journal")
        self.stats.mailed += 1
        if refused:
            self._dead_letter(msg, _partly_refused(refused), commit=False)
        self._commit(msg)
        self._failpoints.hit("mailer.after_commit")
        log.info(
            "mailed project %s version %d (%s, %s) to %s, Message-ID %s; %s",
            mail.project_id,
            mail.routing_version,
            routing["province_code"],
            "late" if routing.get("late") else "on time",
            ", ".join(a for a in mail.recipients if a not in refused) or "nobody",
            mail.message_id,
            self.stats.summary(),
        )

    def _previous_message_id(self, routing: dict[str, Any]) -> str | None:
        """The Message-ID of the version this one supersedes, if that one was mailed."""
        version = int(routing.get("routing_version") or 1)
        earlier = self.journal.get((routing["campaign_id"], routing["project_id"], version - 1))
        if earlier is None:
            return None
        return message_id(
            campaign_id=earlier.campaign_id,
            project_id=earlier.project_id,
            routing_version=earlier.routing_version,
            domain=self.cfg.from_address.rpartition("@")[2],
        )

    # -- Kafka -------------------------------------------------------------------------------
    def _commit(self, msg: Any) -> None:
        try:
            self._consumer.commit(
                offsets=[TopicPartition(msg.topic(), msg.partition(), msg.offset() + 1)],
                asynchronous=False,
            )
        except KafkaException as exc:
            # The journal already holds what matters; a routing read again is skipped.
            log.warning(
                "committing %s[%d]@%d failed (%s); it will be read again and skipped",
                msg.topic(),
                msg.partition(),
                msg.offset(),
                exc,
            )

    def _dead_letter(
        self,
        msg: Any,
        error: BaseException,
        *,
        province_code: str | None = None,
        commit: bool = True,
    ) -> None:
        kind, ts = msg.timestamp()
        record = dead_letter(
            processor=PROCESSOR,
            producer=f"{self.settings.kafka.client_id}-mailer",
            topic=msg.topic(),
            partition=msg.partition(),
            offset=msg.offset(),
            key=msg.key(),
            payload=msg.value(),
            error=error,
            province_code=province_code,
            occurred_at=_kafka_time(ts if kind else None),
        )
        failures: list[str] = []
        try:
            self._producer.produce(
                self._dlq_topic,
                key=msg.topic().encode(),
                value=self.codec.encode("dead_letter", record),
                on_delivery=kafka_clients.delivery_recorder(failures),
            )
            kafka_clients.wait_delivered(self._producer, failures, timeout=_KAFKA_TIMEOUT)
        except (KafkaException, KafkaError, BufferError) as exc:
            raise _Retry(f"dead letter not written to {self._dlq_topic}: {exc}") from exc
        self.stats.dead_lettered += 1
        log.warning(
            "dead letter %s[%d]@%d %s (field %s): %s",
            msg.topic(),
            msg.partition(),
            msg.offset(),
            record["reason_code"],
            record["field"],
            record["error"],
        )
        if commit:
            self._commit(msg)


def _partly_refused(refused: dict[str, str]) -> smtp.MailRefused:
    return smtp.MailRefused(
        "the SMTP server accepted the mail for the other recipients but refused: "
        + "; ".join(f"{addr}: {reply}" for addr, reply in sorted(refused.items())),
        field="mail_to",
        reason_code="mail_recipient_refused",
    )


def _kafka_time(timestamp_ms: int | None) -> dt.datetime | None:
    if timestamp_ms is None or timestamp_ms < 0:
        return None
    return dt.datetime.fromtimestamp(timestamp_ms / 1000, dt.UTC)
