"""The rules' agents: the selection quota (R1) and project routing (R2-R4), plus the clock that
makes deadlines pass in-stream.

* `quota` (keyed by province_code) reads three co-partitioned topics: the inventory's
  per-province camera changes, the provinces' selection decisions, and `rules_clock` ticks.
  Its state: `quota-provinces` (figures, versions, alerts raised, pending camera writes) and
  `quota-cameras` ("<province>|<camera_id>": registered / retired / moved, selected).
* `route-projects` (keyed by project_id) reads submissions; state `routing-projects`.
* The leader worker ticks the clock: one `rules_clock` record per campaign province, keyed by
  province, so each tick reaches the agent that owns the province. Deadline alerts are raised
  when a tick (or an event) moves a province's clock past a threshold, once per province and
  condition: the condition is in the province's state, and the alert's id derives from the
  province and condition, so a restart, a rebalance or a second ticking worker repeats nothing.

Both agents take events in batches (`Processors.handle_batch`): each key written once per
batch. The rules are in quota_rules / routing_rules; this module only moves records.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from faust.types import TP

from cctv.ids import derived_event_id
from stream_processors import rule_state
from stream_processors.inventory_rules import Position
from stream_processors.quota_rules import QuotaRules
from stream_processors.routing_rules import RoutingRules, avro_record

if TYPE_CHECKING:
    import faust

    from stream_processors.app import BatchView, Outbox, Processors

#: The topic (logical name) each derived schema goes to, and the field that keys it.
OUTPUTS = {
    "selection_outcome": ("selection_outcomes", "province_code"),
    "quota_progress": ("quota_progress", "province_code"),
    "project_routing": ("project_routing", "project_id"),
    "alert": ("alerts", "subject_id"),
}


def register(p: Processors) -> None:
    ctx = p.ctx
    codec = ctx.codec
    settings = ctx.settings.processors
    quota = QuotaRules(ctx.campaign, ctx.provinces, p.producer_id)
    routing = RoutingRules(ctx.campaign, ctx.provinces, p.producer_id)

    inputs = {  # Kafka topic name -> (schema it carries, which rule)
        p.topic("camera_inventory_changes").get_topic_name(): "camera_inventory_change",
        p.topic("selection_decisions").get_topic_name(): "selection_decision",
        p.topic("rules_clock").get_topic_name(): "rules_clock",
    }
    quota_channel = p.app.topic(
        *inputs,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )
    partitions = p.topic("selection_decisions").partitions
    provinces_table = p.table(
        "quota-provinces",
        default=None,
        cached=True,
        partitions=partitions,
        help="per province: registered and selected cameras, clock, status, alerts raised, the "
        "input positions applied, and what is not yet confirmed delivered",
    )
    cameras_table = p.table(
        "quota-cameras",
        default=None,
        cached=True,
        partitions=partitions,
        help="per '<province>|<camera_id>': registered / retired / moved, selected, and the "
        "decision ids answered",
    )
    projects_table = p.table(
        "routing-projects",
        default=None,
        cached=True,
        partitions=p.topic("project_submissions").partitions,
        help="per project: routing version, submissions seen, late alert raised",
    )

    def emit(out: Outbox, records: list[tuple[str, dict]]) -> None:
        for schema, record in records:
            logical, key_field = OUTPUTS[schema]
            out.send(
                p.topic(logical),
                key=str(record[key_field]).encode(),
                value=codec.encode(schema, avro_record(schema, record)),
            )

    def confirmed(ledger, partition: int, topics) -> dict[str, int | None]:
        return {t: ledger.confirmed_through(TP(t, partition)) for t in topics}

    @p.app.agent(quota_channel, name="quota", concurrency=1)
    async def quota_agent(stream: faust.StreamT) -> None:
        stream = stream.noack()
        ledger = p.ledger("rules.quota", stream)

        def plan(event: faust.EventT, out: Outbox, view: BatchView) -> None:
            msg = event.message
            schema = inputs[msg.topic]
            record = codec.decode(msg.value or b"", expected=schema).record
            province = record["province_code"]
            state = rule_state.checked(
                view.get(provinces_table, event, province), table=provinces_table.name
            )
            position = Position(msg.topic, msg.partition, msg.offset)
            done = confirmed(ledger, msg.partition, inputs)

            def camera(key: str):
                return view.get(cameras_table, event, key)

            if schema == "camera_inventory_change":
                step = quota.apply_change(state, camera, record, position=position, confirmed=done)
            elif schema == "selection_decision":
                step = quota.decide(state, camera, record, position=position, confirmed=done)
            else:
                step = quota.tick(state, record, position=position, confirmed=done)
            if step.state is not None:
                view.put(provinces_table, event, province, step.state)
            for key, value in step.writes.items():
                view.put(cameras_table, event, key, value)
            emit(out, step.emit)

        async for events in stream.take_events(
            settings.batch_max_events, within=settings.batch_max_seconds
        ):
            await p.handle_batch(ledger, list(events), plan)

    submissions = p.topic("project_submissions")

    @p.app.agent(submissions, name="route-projects", concurrency=1)
    async def route_projects(stream: faust.StreamT) -> None:
        stream = stream.noack()
        ledger = p.ledger("rules.route-projects", stream)
        topic_name = submissions.get_topic_name()

        def plan(event: faust.EventT, out: Outbox, view: BatchView) -> None:
            msg = event.message
            record = codec.decode(msg.value or b"", expected="project_submission").record
            project = record["project_id"]
            state = rule_state.checked(
                view.get(projects_table, event, project), table=projects_table.name
            )
            step = routing.submit(
                state,
                record,
                position=Position(msg.topic, msg.partition, msg.offset),
                confirmed=confirmed(ledger, msg.partition, [topic_name]),
            )
            if step.state is not None:
                view.put(projects_table, event, project, step.state)
            emit(out, step.emit)

        async for events in stream.take_events(
            settings.batch_max_events, within=settings.batch_max_seconds
        ):
            await p.handle_batch(ledger, list(events), plan)

    if settings.clock_interval_seconds > 0:
        clock_topic = p.topic("rules_clock")

        @p.app.timer(settings.clock_interval_seconds, on_leader=True, name="rules-clock")
        async def tick() -> None:
            """Tick every campaign province (from the leader: one worker ticks at a time;
            two ticking for a moment, say in a rebalance, only repeat a time already seen)."""
            now = dt.datetime.now(dt.UTC).replace(microsecond=0)
            for province in ctx.campaign.provinces:
                record = clock_tick(province, now, producer=p.producer_id)
                await clock_topic.send(
                    key=province.encode(), value=codec.encode("rules_clock", record)
                )


def clock_tick(province: str, at: dt.datetime, *, producer: str) -> dict:
    """One tick of the rules' clock for `province` (also what `cctv rules tick` sends)."""
    return {
        "event_id": derived_event_id("rules_clock", province, at.isoformat()),
        "occurred_at": at,
        "producer": producer,
        "province_code": province,
        "at": at,
    }
