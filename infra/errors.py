"""Errors raised while fetching, configuring, starting or stopping the local servers.

Callers such as `make up` and the pytest session fixtures catch `InfraError` alone; the
subclasses say which server failed. Messages carry what a person needs to act: the command
that was run, the tail of the server's log, and what to install or change.
"""

from __future__ import annotations


class InfraError(RuntimeError):
    """A local server could not be fetched, started, reached or stopped."""


class BrokerError(InfraError):
    """The local Kafka broker (infra/kafka/broker.py) failed."""


class ClickHouseServerError(InfraError):
    """The local ClickHouse server (infra/clickhouse/server.py) failed."""
