"""Errors raised by the schema registry, the codec and the compatibility checker.

Callers catch these, never a library's: every fastavro / confluent-kafka exception is
wrapped with ``raise ... from exc``. ``reason_code`` is the machine-readable code that goes
into a dead letter's ``reason_code``; ``field`` is the dotted path of the field to blame.
"""

from __future__ import annotations


class SchemaError(Exception):
    """Base of every error raised by the schemas package."""


class UnknownSchemaError(SchemaError):
    """A schema name or version that is not among the .avsc files loaded."""


class ValidationError(SchemaError):
    """A record does not match its schema; names the field, the value and the expected type."""

    def __init__(self, message: str, *, reason_code: str, field: str | None = None) -> None:
        super().__init__(message)
        self.reason_code = reason_code
        self.field = field


class EncodeError(SchemaError):
    """A valid record could not be framed, e.g. the schema registry refused or was unreachable."""

    def __init__(self, message: str, *, reason_code: str, field: str | None = None) -> None:
        super().__init__(message)
        self.reason_code = reason_code
        self.field = field


class DecodeError(SchemaError):
    """Bytes that cannot be read as an event of a known schema."""

    def __init__(self, message: str, *, reason_code: str, field: str | None = None) -> None:
        super().__init__(message)
        self.reason_code = reason_code
        self.field = field
