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


class StorageError(CctvError):
    """ClickHouse (server or embedded chDB) refused or failed a statement."""


class KafkaError(CctvError):
    """The Kafka cluster refused or failed an operation."""
