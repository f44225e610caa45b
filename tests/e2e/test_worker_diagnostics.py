"""`kill -USR2` on a worker logs where every task waits, through Faust's async generators."""

from __future__ import annotations

import signal

import pytest

from tests.conftest import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.kafka]


def test_sigusr2_dumps_every_await_chain_and_the_worker_goes_on(stack):
    worker = stack.spawn("stream_processors", "worker")
    wait_until(lambda: "Worker ready" in stack.log("worker"), timeout=120, what="the worker")
    worker.send_signal(signal.SIGUSR2)
    wait_until(lambda: "end of dump" in stack.log("worker"), timeout=30, what="the dump")
    log = stack.log("worker")
    assert "asyncio task(s), innermost wait last" in log
    assert "_drain_messages" in log and "getmany" in log  # inside the consumer's generator
    assert worker.poll() is None  # no debugger, no exit: still running
