"""The project's own errors: callers catch these, never a library's."""


class CctvError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigError(CctvError):
    """Settings, campaign, province or topic configuration is missing or invalid."""


class InputError(CctvError):
    """A record from outside (file, HTTP, Kafka) is invalid; names the field and the value."""

    def __init__(
        self, message: str, *, field: str | None = None, reason_code: str = "invalid_field"
    ):
        super().__init__(message)
        self.field = field
        self.reason_code = reason_code


class RowRejected(InputError):
    """A record is valid Avro but a ClickHouse column cannot hold one of its values."""

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message, field=field, reason_code="storage_rejected")


class StorageError(CctvError):
    """ClickHouse (server or embedded chDB) refused or failed a statement."""


class StorageUnavailable(StorageError):
    """ClickHouse could not be reached (connection refused, timeout, lost connection)."""


class KafkaError(CctvError):
    """The Kafka cluster refused or failed an operation."""
