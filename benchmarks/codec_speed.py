"""Codec speed: AvroCodec.encode / decode / decode_many against bare fastavro, per record.

The goal (from the issue "make the Avro codec fast"): the codec's encode and decode each
within 1.5x of fastavro's own ``schemaless_writer`` / ``schemaless_reader`` on the same
records with the same parsed schema, measured in the same run. No Kafka: everything runs
in-process (``python -m benchmarks --only codec``).

Per schema, five measurements of N distinct records each:

* ``fastavro.schemaless_writer`` -- a BytesIO per record, the body only (no frame header);
* ``AvroCodec.encode`` -- validation, frame header and body (ratio vs the writer);
* ``fastavro.schemaless_reader`` -- from a BytesIO over each pre-sliced body, writer schema
  only; uuid fields come back as uuid.UUID;
* ``AvroCodec.decode`` -- frame, lookup, body, uuid fields as str (ratio vs the reader);
* ``AvroCodec.decode_many`` -- the whole batch in one call, per record (ratio vs the reader).

Each loop keeps its results in a list, as a consumer would. A round runs the five once, in
an order rotated from round to round so that a burst of load elsewhere does not always hit
the same one; the section reports the median over rounds and the ratio of medians.
"""

from __future__ import annotations

import gc
import io
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import fastavro

from benchmarks import machine, report
from benchmarks.records import heartbeats, registrations
from benchmarks.section import Context
from schemas.codec import SINGLE_OBJECT_MAGIC, AvroCodec
from schemas.registry import SchemaRegistry

SECTION = "codec"
TITLE = "Codec speed: AvroCodec against bare fastavro"
GOAL = 1.5  # the codec may take at most this many times bare fastavro's time
DEFAULT_RECORDS = 20_000
DEFAULT_REPEAT = 15
UNSTEADY = 0.2  # per-round ratio quartiles further apart than this (relative) are flagged
_HEADER = len(SINGLE_OBJECT_MAGIC) + 8  # magic + CRC-64-AVRO fingerprint

WORKLOADS: dict[str, Callable[[int], list[dict[str, Any]]]] = {
    "camera_heartbeat": heartbeats,  # 15 fields, 7 of them nullable unions
    "camera_registration": registrations,  # 17 fields, an enum, Thai text
}
WRITER = "fastavro.schemaless_writer"
READER = "fastavro.schemaless_reader"
ENCODE = "AvroCodec.encode"
DECODE = "AvroCodec.decode"
DECODE_MANY = "AvroCodec.decode_many"
BASELINE_OF = {ENCODE: WRITER, DECODE: READER, DECODE_MANY: READER}


@dataclass
class SchemaResult:
    """µs per record of each measurement, one sample per round."""

    schema: str
    records: int
    frame_bytes: float  # mean size of an encoded event, header included
    samples: dict[str, list[float]] = field(default_factory=dict)

    def median(self, name: str) -> float:
        return statistics.median(self.samples[name])

    def ratio(self, name: str) -> float:
        """median(name) / median(its bare fastavro baseline)."""
        return self.median(name) / self.median(BASELINE_OF[name])

    def ratio_spread(self, name: str) -> tuple[float, float]:
        """The middle half (quartiles) of the per-round ratios (round i vs baseline round i).

        Quartiles rather than min-max: over many rounds on a shared machine one round
        nearly always catches a burst of someone else's work.
        """
        pairs = sorted(
            a / b for a, b in zip(self.samples[name], self.samples[BASELINE_OF[name]], strict=True)
        )
        if len(pairs) < 2:
            return pairs[0], pairs[0]
        q1, _, q3 = statistics.quantiles(pairs, n=4, method="inclusive")
        return q1, q3

    def meets_goal(self, name: str) -> bool:
        return self.ratio(name) <= GOAL

    def unsteady(self) -> list[str]:
        names = []
        for name in BASELINE_OF:
            low, high = self.ratio_spread(name)
            if high > low * (1 + UNSTEADY):
                names.append(name)
        return names


@dataclass
class CodecSpeedResult:
    records: int
    repeat: int
    schemas: list[SchemaResult]
    seconds: float = 0.0

    @property
    def goal_met(self) -> bool:
        return all(s.meets_goal(n) for s in self.schemas for n in BASELINE_OF)


# -- measuring ------------------------------------------------------------------------------


def measure(
    codec: AvroCodec, schema: str, records: list[dict[str, Any]], *, repeat: int, log: Any
) -> SchemaResult:
    """Run the five measurements ``repeat`` rounds over ``records`` of ``schema``."""
    parsed = codec.registry.latest(schema)
    values = [codec.encode(schema, r) for r in records]
    bodies = [v[_HEADER:] for v in values]
    writer, reader = fastavro.schemaless_writer, fastavro.schemaless_reader
    encode, decode = codec.encode, codec.decode

    def bare_write() -> list[bytes]:
        out = []
        for record in records:
            buffer = io.BytesIO()
            writer(buffer, parsed, record)
            out.append(buffer.getvalue())
        return out

    loops: dict[str, Callable[[], list[Any]]] = {
        WRITER: bare_write,
        ENCODE: lambda: [encode(schema, r) for r in records],
        READER: lambda: [reader(io.BytesIO(b), parsed, None) for b in bodies],
        DECODE: lambda: [decode(v, expected=schema) for v in values],
        DECODE_MANY: lambda: codec.decode_many(values, expected=schema),
    }
    _check_same_results(schema, records, bodies, loops)
    result = SchemaResult(
        schema=schema,
        records=len(records),
        frame_bytes=sum(map(len, values)) / max(1, len(values)),
        samples={name: [] for name in loops},
    )
    order = list(loops)
    for loop in loops.values():  # warm-up: plans compiled, caches and allocator warm
        loop()
    for round_no in range(repeat):
        shift = round_no % len(order)
        for name in order[shift:] + order[:shift]:
            gc.collect()
            started = time.perf_counter()
            loops[name]()
            elapsed = time.perf_counter() - started
            result.samples[name].append(elapsed / len(records) * 1e6)
        print(
            f"    {schema} [{round_no + 1}/{repeat}] "
            + ", ".join(f"{n} {result.samples[n][-1]:.2f}" for n in loops)
            + " µs/record",
            file=log,
        )
        log.flush()
    return result


def _check_same_results(
    schema: str,
    records: list[dict[str, Any]],
    bodies: list[bytes],
    loops: dict[str, Callable[[], list[Any]]],
) -> None:
    """The codec and bare fastavro must do the same work: same bytes, same records."""
    if loops[WRITER]() != bodies:
        raise RuntimeError(f"{schema}: AvroCodec.encode wrote other bytes than fastavro")
    decoded = loops[DECODE_MANY]()
    if [d.record for d in decoded] != records:
        raise RuntimeError(f"{schema}: AvroCodec.decode_many did not give the records back")


def run(*, records: int, repeat: int, log: Any) -> CodecSpeedResult:
    """Every workload in WORKLOADS, ``records`` distinct records, ``repeat`` rounds each."""
    wall = time.perf_counter()
    codec = AvroCodec(SchemaRegistry.load())
    results = []
    for schema, make in WORKLOADS.items():
        print(f"  {schema}: generating {records:,} records ...", file=log)
        results.append(measure(codec, schema, make(records), repeat=repeat, log=log))
    return CodecSpeedResult(
        records=records, repeat=repeat, schemas=results, seconds=time.perf_counter() - wall
    )


# -- reporting ------------------------------------------------------------------------------


def rows(result: CodecSpeedResult) -> list[tuple[str, str, str, str, str, str]]:
    """(schema, measurement, median µs, range, ratio, goal) for every measurement."""
    out = []
    for s in result.schemas:
        for name, samples in s.samples.items():
            if name in BASELINE_OF:
                low, high = s.ratio_spread(name)
                ratio = f"{s.ratio(name):.2f} ({low:.2f}–{high:.2f})"
                goal = f"≤ {GOAL}: " + ("**met**" if s.meets_goal(name) else "**not met**")
            else:
                ratio, goal = "1.00 (baseline)", ""
            out.append(
                (
                    s.schema,
                    name,
                    f"{s.median(name):.2f}",
                    f"{min(samples):.2f} – {max(samples):.2f}",
                    ratio,
                    goal,
                )
            )
    return out


HEADERS = ("schema", "measurement", "median µs/record", "range (min – max)", "ratio", "goal")


def format_table(result: CodecSpeedResult) -> str:
    """The results as an aligned plain-text table (for stdout)."""
    table = [HEADERS, *(tuple(c.replace("**", "") for c in r) for r in rows(result))]
    return report.aligned_table(table, right={2, 3})


def render_section(
    result: CodecSpeedResult,
    *,
    command: str,
    date: str,
    machine_block: dict[str, str],
    load_before: str,
    load_after: str,
    note: str,
) -> str:
    verdict = "**met**" if result.goal_met else "**not met**"
    lines = [
        f"## {TITLE}",
        "",
        f"- Goal: `AvroCodec.encode` and `AvroCodec.decode` each within **{GOAL}×** the time "
        "of bare fastavro (`schemaless_writer` / `schemaless_reader`) on the same records "
        "with the same parsed schema, in the same run; `decode_many` per record is held to "
        f"the same. Result: {verdict} for every schema and measurement below.",
        f"- Command: {command}",
        f"- Date: {date}",
        f"- Workload: {result.records:,} distinct records per schema and measurement "
        f"({', '.join(f'`{s.schema}` {s.frame_bytes:.0f} bytes' for s in result.schemas)} "
        "per event on average, single-object framing); "
        f"{result.repeat} rounds, each running the five measurements once in a rotating "
        "order after one untimed warm-up; the median over rounds, the min–max, and the "
        "ratio of medians (in brackets: the middle half, i.e. the quartiles, of the per-round "
        "ratios) are reported. "
        "Every loop keeps its results in a list.",
        "- Checked before timing: the codec writes the same body bytes as bare fastavro, and "
        "`decode_many` gives the records back.",
        f"- Whole section: {result.seconds:.0f} s; load average (1/5/15 min) {load_before} "
        f"before, {load_after} after.",
    ]
    if note:
        lines.append(f"- Note: {note}")
    for s in result.schemas:
        for name in s.unsteady():
            low, high = s.ratio_spread(name)
            lines.append(
                f"- **Unsteady:** `{s.schema}` `{name}`: the middle half of the per-round ratios "
                f"spans {low:.2f} to {high:.2f} (more than {UNSTEADY:.0%} apart): the machine was "
                "busy; rerun, or raise `--codec-repeat`, before holding the codec to it."
            )
    lines += [
        "",
        "| " + " | ".join(HEADERS) + " |",
        "|---|---|---:|---:|---|---|",
        *(f"| `{r[0]}` | `{r[1]}` | {r[2]} | {r[3]} | {r[4]} | {r[5]} |" for r in rows(result)),
        "",
        "- `fastavro.schemaless_writer`: a BytesIO per record, the Avro body only.",
        "- `AvroCodec.encode`: validation (the compiled check), frame header, body.",
        "- `fastavro.schemaless_reader`: a BytesIO over each pre-sliced body; uuid fields "
        "come back as `uuid.UUID`.",
        "- `AvroCodec.decode`: frame, writer lookup, body, trailing-bytes check, uuid fields "
        "as `str`, a `Decoded`.",
        "- `AvroCodec.decode_many`: the whole batch in one call, divided by the records.",
        "",
        *machine.markdown(machine_block),
        "",
        "### How to read this",
        "",
        "- The **ratios** are what the codec is held to: bare fastavro on the same machine in "
        "the same run is the denominator, so the machine and its load mostly cancel out. "
        "The µs/record are context only.",
        "- `encode` is slower than the bare writer by its validation (Validator's verdicts, "
        "compiled per schema) and the frame header; `decode` is close to the bare reader "
        "because it reads uuid fields as the strings they are on the wire instead of building "
        "`uuid.UUID` objects (which the contract would turn back into `str`).",
        "- A wide spread of the per-round ratios means the machine was busy: rerun before "
        "drawing conclusions.",
    ]
    return "\n".join(lines)


def run_section(ctx: Context) -> str:
    """The ``codec`` section: measure in-process, print the table, return Markdown."""
    args = ctx.args
    load_before = machine.load_average()
    result = run(records=args.codec_records, repeat=args.codec_repeat, log=ctx.log)
    load_after = machine.load_average()
    print()
    print(f"{TITLE} ({args.codec_records:,} records x {args.codec_repeat} rounds)")
    print(format_table(result))
    print(f"goal ({GOAL}x bare fastavro for encode, decode and decode_many): ", end="")
    print("met" if result.goal_met else "NOT MET")
    print(f"whole section: {result.seconds:.0f} s; load average {load_before} -> {load_after}")
    return render_section(
        result,
        command=ctx.command(
            [
                "--only",
                SECTION,
                "--codec-records",
                str(args.codec_records),
                "--codec-repeat",
                str(args.codec_repeat),
            ]
        ),
        date=ctx.date,
        machine_block=machine.describe(),
        load_before=load_before,
        load_after=load_after,
        note=args.note,
    )
