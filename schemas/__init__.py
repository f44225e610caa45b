"""The contracts between processes: Avro schemas (``avro/<name>/v<N>.avsc``), the local
schema registry that loads them, the codec that frames events on Kafka, and the
compatibility checker that keeps versions readable both ways."""

from schemas.codec import AvroCodec, Decoded, to_json_safe
from schemas.compat import check_all, check_compatible
from schemas.errors import (
    DecodeError,
    EncodeError,
    SchemaError,
    UnknownSchemaError,
    ValidationError,
)
from schemas.registry import SchemaRegistry, SchemaVersion

__all__ = [
    "AvroCodec",
    "DecodeError",
    "Decoded",
    "EncodeError",
    "SchemaError",
    "SchemaRegistry",
    "SchemaVersion",
    "UnknownSchemaError",
    "ValidationError",
    "check_all",
    "check_compatible",
    "to_json_safe",
]
