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
