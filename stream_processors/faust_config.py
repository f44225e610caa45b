"""The Faust app's configuration, from our settings object and nothing else.

Faust reads environment variables of its own (`BROKER_URL`, `APP_DATADIR`,
`PROCESSING_GUARANTEE`, `WEB_PORT`, ... -- every setting declared with an `env_name` in
faust/types/settings/settings.py, optionally behind `APP_ENV_PREFIX`) and lets them win over the
arguments given to `faust.App`. A stray `BROKER_URL` in a container would silently point the
worker at another cluster, and `PROCESSING_GUARANTEE=exactly_once` would change its guarantees.
So the app's settings are built with an empty environment (`env={}`), and the few defaults that
faust.types._env takes from `FAUST_*`/`F_*` variables at import (data directory, web port, bind
address and transport, debug) are all given explicitly here or to the worker.

The cluster's security is the librdkafka settings in `kafka.extra` (what every other client of
ours uses), mapped onto Faust's credentials -- faithfully or not at all: a setting the worker
cannot honour is a ConfigError naming the key, never silently something else.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

import faust
from faust.types.auth import CredentialsT

from cctv.exceptions import ConfigError
from cctv.settings import KafkaSettings, Settings

# librdkafka's spellings (it compares them case-sensitively); aiokafka supports these three
# with a user name and password. GSSAPI (aiokafka needs the `gssapi` package and a ticket cache,
# librdkafka runs kinit with a keytab) and OAUTHBEARER (aiokafka needs a token provider object,
# librdkafka an OIDC endpoint or a JWT config) have no faithful mapping: they are refused.
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
# What the mapping below honours; any other ssl.* / sasl.* key is refused.
MAPPED_KEYS = {
    "security.protocol",
    "sasl.mechanism",
    "sasl.mechanisms",
    "sasl.username",
    "sasl.password",
    "ssl.ca.location",
    "ssl.ca.pem",
    "ssl.certificate.location",
    "ssl.key.location",
    "ssl.key.password",
    "ssl.cipher.suites",
    "ssl.endpoint.identification.algorithm",
    "enable.ssl.certificate.verification",
}


def app_options(settings: Settings) -> dict[str, Any]:
    """Every argument of `faust.App` besides the id, from `settings` only."""
    s = settings
    return {
        "env": {},  # Faust's own environment variables are not read
        "broker": broker_url(s.kafka.bootstrap_servers),
        "broker_credentials": broker_credentials(s.kafka),
        "broker_client_id": f"{s.kafka.client_id}-worker",
        "store": s.processors.store,
        "datadir": str(s.processors.datadir),
        "processing_guarantee": "at_least_once",
        "topic_replication_factor": s.kafka.replication_factor,
        "topic_allow_declare": True,
        "producer_acks": -1,
        "producer_linger": s.processors.producer_linger_ms / 1000,
        "consumer_auto_offset_reset": "earliest",
        "broker_session_timeout": s.processors.session_timeout_seconds,
        "web_enabled": s.processors.web_port != 0,
        "web_port": s.processors.web_port or 6066,
        "web_bind": "127.0.0.1",
        "web_transport": "tcp://",
        "key_serializer": "raw",
        "value_serializer": "raw",
    }


def create_faust_app(settings: Settings) -> faust.App:
    return faust.App(settings.processors.app_id, **app_options(settings))


def install_event_loop(settings: Settings) -> None:
    """In a worker process, before the app is made: uvloop unless `processors.event_loop`
    says asyncio. Faust's per-event path (queues, futures, callbacks) is mostly event-loop
    work, which uvloop does in C."""
    if settings.processors.event_loop == "uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def broker_url(bootstrap_servers: str) -> str:
    return ";".join(f"kafka://{host.strip()}" for host in bootstrap_servers.split(","))


def broker_credentials(settings: KafkaSettings) -> CredentialsT | None:
    """The same cluster security the librdkafka clients get (kafka.extra), in Faust's terms."""
    extra = {k: v.get_secret_value() for k, v in settings.extra.items()}
    protocol = extra.get("security.protocol", "PLAINTEXT").strip().upper()
    if protocol not in SECURITY_PROTOCOLS:
        raise ConfigError(
            f"kafka.extra.security.protocol: {extra['security.protocol']!r} is not one of "
            f"{', '.join(SECURITY_PROTOCOLS)}"
        )
    if protocol == "PLAINTEXT":
        return None
    for key in sorted(extra):
        if key.startswith(("ssl.", "sasl.", "enable.ssl.")) and key not in MAPPED_KEYS:
            raise ConfigError(
                f"kafka.extra.{key}: not supported by the Faust worker (it honours "
                f"{', '.join(sorted(MAPPED_KEYS))}); remove it or use a supported equivalent"
            )
    context = _ssl_context(extra) if protocol in ("SSL", "SASL_SSL") else None
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    mechanism = _sasl_mechanism(extra)
    for key in ("sasl.username", "sasl.password"):
        if not extra.get(key):
            raise ConfigError(f"kafka.extra.{key}: required for SASL mechanism {mechanism}")
    return faust.SASLCredentials(
        username=extra["sasl.username"],
        password=extra["sasl.password"],
        mechanism=mechanism,
        ssl_context=context,
    )


def _sasl_mechanism(extra: dict[str, str]) -> str:
    # librdkafka's name is `sasl.mechanisms` (despite the plural, one mechanism); `sasl.mechanism`
    # is its alias. Both name the same property: given twice, they must agree.
    given = {
        key: extra[key].strip() for key in ("sasl.mechanisms", "sasl.mechanism") if key in extra
    }
    if len(set(given.values())) > 1:
        raise ConfigError(
            "kafka.extra.sasl.mechanisms and kafka.extra.sasl.mechanism disagree "
            f"({given['sasl.mechanisms']!r} vs {given['sasl.mechanism']!r}); they are one setting"
        )
    if not given:
        raise ConfigError(
            "kafka.extra.sasl.mechanism: not set; librdkafka would then use GSSAPI, which the "
            f"Faust worker does not support (expected one of {', '.join(SASL_MECHANISMS)})"
        )
    key, mechanism = next(iter(given.items()))
    if mechanism not in SASL_MECHANISMS:
        raise ConfigError(
            f"kafka.extra.{key}: {mechanism!r} is not supported by the Faust worker (expected "
            f"one of {', '.join(SASL_MECHANISMS)}, spelled so)"
        )
    return mechanism


def _ssl_context(extra: dict[str, str]) -> ssl.SSLContext:
    ca = extra.get("ssl.ca.location")
    if ca == "probe":  # librdkafka: look in the system's usual places, as the default does
        ca = None
    try:
        context = ssl.create_default_context(
            cafile=ca if ca and not Path(ca).is_dir() else None,
            capath=ca if ca and Path(ca).is_dir() else None,
            cadata=extra.get("ssl.ca.pem"),
        )
        if extra.get("ssl.certificate.location"):
            context.load_cert_chain(
                extra["ssl.certificate.location"],
                extra.get("ssl.key.location"),
                extra.get("ssl.key.password"),
            )
        if extra.get("ssl.cipher.suites"):
            context.set_ciphers(extra["ssl.cipher.suites"])
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"kafka.extra: TLS files or ciphers could not be loaded: {exc}") from exc
    hostname = extra.get("ssl.endpoint.identification.algorithm", "https").strip().lower()
    if hostname not in ("https", "none"):
        raise ConfigError(
            "kafka.extra.ssl.endpoint.identification.algorithm: expected https or none, "
            f"got {hostname!r}"
        )
    verify = extra.get("enable.ssl.certificate.verification", "true").strip().lower()
    if verify not in ("true", "false"):
        raise ConfigError(
            "kafka.extra.enable.ssl.certificate.verification: expected true or false, "
            f"got {verify!r}"
        )
    if hostname == "none" or verify == "false":
        context.check_hostname = False
    if verify == "false":
        context.verify_mode = ssl.CERT_NONE
    return context
