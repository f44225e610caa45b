"""`kill -USR2 <worker pid>`: every asyncio task's whole await chain, to standard error.

mode's own dump (SIGUSR1) stops at the first async generator ("rest of traceback truncated"),
and Faust's consumer lives in async generators: where a stalled worker waits is exactly what it
cannot show. This follows `cr_await` / `ag_await` through coroutines, async generators and
awaited futures down to the innermost wait.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import sys
import traceback
from types import FrameType
from typing import Any, TextIO


def dump_tasks(out: TextIO) -> None:
    try:
        loop = asyncio.get_event_loop()
        tasks = asyncio.all_tasks(loop)
    except RuntimeError:
        tasks = set()
    print(f"===== {len(tasks)} asyncio task(s), innermost wait last =====", file=out)
    for task in sorted(tasks, key=lambda t: t.get_name()):
        print(f"--- {task!r:.300}", file=out)
        for line in await_chain(task.get_coro()):
            print(f"    {line}", file=out)
    for thread_id, frame in sys._current_frames().items():
        print(f"--- thread {thread_id}", file=out)
        for entry in traceback.format_stack(frame)[-12:]:
            print("    " + entry.rstrip().replace("\n", "\n    "), file=out)
    print("===== end of dump =====", file=out, flush=True)


def await_chain(obj: Any) -> list[str]:
    lines: list[str] = []
    last_frame: FrameType | None = None
    for _ in range(80):
        if obj is None:
            break
        frame: FrameType | None = (
            getattr(obj, "cr_frame", None)
            or getattr(obj, "ag_frame", None)
            or getattr(obj, "gi_frame", None)
        )
        if frame is not None:
            last_frame = frame
            code = frame.f_code
            lines.append(f"{code.co_filename}:{frame.f_lineno} in {code.co_name}")
            obj = (
                getattr(obj, "cr_await", None)
                or getattr(obj, "ag_await", None)
                or getattr(obj, "gi_yieldfrom", None)
            )
            continue
        if type(obj).__name__ == "async_generator_asend" and last_frame is not None:
            # The asend wrapper hides its generator: it is the running one among the locals
            # of the frame that awaits it (`async for x in ait`).
            running = [
                v for v in last_frame.f_locals.values() if inspect.isasyncgen(v) and v.ag_running
            ]
            if running:
                obj = running[0]
                continue
        # Opaque wrappers (a coroutine's __await__ iterator, a future's iterator) reference
        # what they wrap: follow it.
        inner = [
            r
            for r in gc.get_referents(obj)
            if inspect.iscoroutine(r) or inspect.isasyncgen(r) or inspect.isgenerator(r)
        ]
        if inner:
            obj = inner[0]
            continue
        lines.append(f"waiting on {obj!r:.200}")
        break
    return lines


def dump_faust(app: Any, out: TextIO) -> None:
    """The consumer's flow state: which partitions it fetches, which it holds back and why."""
    print("===== Faust consumer state =====", file=out)
    try:
        consumer = app.consumer
        print(f"flow_control active: {app.flow_control.is_active()}", file=out)
        print(f"consumer flow_active: {consumer.flow_active}", file=out)
        print(f"generation: {app.consumer_generation_id}", file=out)
        print(f"assignment: {sorted(map(str, consumer.assignment()))}", file=out)
        for name in ("_active_partitions", "_paused_partitions", "_buffered_partitions"):
            value = getattr(consumer, name, None)
            shown = sorted(map(str, value)) if value is not None else None
            print(f"{name}: {shown}", file=out)
        print(f"read offsets: { {str(k): v for k, v in consumer._read_offset.items()} }", file=out)
        print(
            f"committed: { {str(k): v for k, v in consumer._committed_offset.items()} }", file=out
        )
        print(f"unacked messages: {len(consumer._unacked_messages)}", file=out)
        try:  # aiokafka's own view (another thread's, read without a lock: a snapshot)
            kafka = consumer._thread._ensure_consumer()
            assignment = kafka._subscription.subscription.assignment
            buffered = set(map(str, kafka._fetcher._records))
            for tp in sorted(assignment.tps, key=str):
                state = assignment.state_value(tp)
                print(
                    f"aiokafka {tp.topic}[{tp.partition}]: position "
                    f"{state._position} highwater {state.highwater} paused {state.paused} "
                    f"awaiting_reset {state.awaiting_reset} buffered {str(tp) in buffered}",
                    file=out,
                )
        except Exception as exc:
            print(f"(aiokafka state unavailable: {exc!r})", file=out)
        for channel in app.topics._topics if hasattr(app.topics, "_topics") else []:
            queue = getattr(channel, "queue", None)
            print(f"channel {channel}: queue size {queue.qsize() if queue else None}", file=out)
    except Exception as exc:  # a diagnostic must never take the worker down
        print(f"(state unavailable: {exc!r})", file=out)
    print("===== end of Faust state =====", file=out, flush=True)
