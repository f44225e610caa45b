"""Unit tests for stream_processors/faust_config.py: the Faust app is configured by our settings
object alone (Faust's own environment variables are ignored), and kafka.extra's librdkafka
security settings map faithfully onto Faust's credentials or are refused."""

from __future__ import annotations

import ssl
from pathlib import Path

import faust
import pytest
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from faust.types.enums import ProcessingGuarantee

from cctv.context import Context
from cctv.exceptions import ConfigError
from cctv.settings import KafkaSettings, Settings
from stream_processors.app import create_app
from stream_processors.faust_config import broker_credentials

# What the trust issue named, and what Faust would make of it.
HOSTILE_ENVIRONMENT = {
    "BROKER_URL": "kafka://127.0.0.1:1",
    "APP_DATADIR": "/somewhere/else",
    "PROCESSING_GUARANTEE": "exactly_once",
    "WEB_PORT": "1",
    "APP_WEB_ENABLED": "true",
    "APP_STORE": "memory://",
    "BROKER_CLIENT_ID": "someone-else",
    "PRODUCER_ACKS": "1",
    "CONSUMER_AUTO_OFFSET_RESET": "latest",
    "TOPIC_REPLICATION_FACTOR": "7",
    "STREAM_WAIT_EMPTY": "false",
    "APP_VALUE_SERIALIZER": "json",
}


def _settings(tmp_path: Path) -> Settings:
    return Settings.load(
        environ={},
        kafka={"bootstrap_servers": "broker-a:9092,broker-b:9092"},
        processors={"datadir": str(tmp_path / "faust"), "web_port": 0, "app_id": "cctv-test"},
    )


def _faust_env_names() -> dict[str, str]:
    """Every setting Faust 0.15 may take from the environment, by setting name."""
    return {name: p.env_name for name, p in faust.Settings.SETTINGS.items() if p.env_name}


def test_faust_still_reads_these_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """The premise: a plain faust.App takes them over its arguments (if Faust stops doing
    that, this test says so and the guard can go)."""
    for name, value in HOSTILE_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    app = faust.App("plain", broker="kafka://127.0.0.1:9092", datadir="/here")
    assert str(app.conf.datadir) == "/somewhere/else"
    assert app.conf.processing_guarantee == ProcessingGuarantee.EXACTLY_ONCE


def test_the_worker_ignores_fausts_environment_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in HOSTILE_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    conf = create_app(Context.load(_settings(tmp_path))).app.conf
    assert [str(url) for url in conf.broker] == ["kafka://broker-a:9092", "kafka://broker-b:9092"]
    assert Path(conf.datadir) == tmp_path / "faust"
    assert conf.processing_guarantee == ProcessingGuarantee.AT_LEAST_ONCE
    assert conf.web_enabled is False
    assert conf.web_port == 6066
    assert str(conf.store) == "rocksdb:"
    assert conf.broker_client_id == "cctv-worker"
    assert conf.producer_acks == -1
    assert conf.consumer_auto_offset_reset == "earliest"
    assert conf.topic_replication_factor == 1
    assert conf.stream_wait_empty is True
    assert conf.value_serializer == "raw"


@pytest.mark.filterwarnings("ignore:Setting .* is deprecated")
def test_no_faust_environment_variable_changes_any_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every name Faust declares, set at once (to a value it would parse): nothing moves."""
    clean = create_app(Context.load(_settings(tmp_path))).app.conf
    names = _faust_env_names()
    for env_name in names.values():
        monkeypatch.setenv(env_name, HOSTILE_ENVIRONMENT.get(env_name, "1"))
    monkeypatch.setenv("APP_ENV_PREFIX", "")  # and no prefix trick either
    polluted = create_app(Context.load(_settings(tmp_path))).app.conf
    differing = [
        name for name in names if repr(getattr(clean, name)) != repr(getattr(polluted, name))
    ]
    assert differing == []


def test_an_env_prefix_does_not_bring_them_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APP_ENV_PREFIX", "CCTVX_")
    monkeypatch.setenv("CCTVX_BROKER_URL", "kafka://127.0.0.1:1")
    conf = create_app(Context.load(_settings(tmp_path))).app.conf
    assert [url.port for url in conf.broker] == [9092, 9092]


# -- kafka.extra -> Faust credentials ----------------------------------------------------------


def kafka(**extra: str) -> KafkaSettings:
    return KafkaSettings(extra=extra)


def aiokafka_auth(**extra: str) -> dict:
    return dict(credentials_to_aiokafka_auth(broker_credentials(kafka(**extra))))


def test_plaintext_needs_no_credentials() -> None:
    assert broker_credentials(kafka()) is None
    assert broker_credentials(kafka(**{"security.protocol": "plaintext"})) is None


@pytest.mark.parametrize("key", ["sasl.mechanisms", "sasl.mechanism"])
@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_both_spellings_of_the_sasl_mechanism_reach_aiokafka(key: str, mechanism: str) -> None:
    auth = aiokafka_auth(
        **{
            "security.protocol": "SASL_PLAINTEXT",
            key: mechanism,
            "sasl.username": "cctv",
            "sasl.password": "s3cret",
        }
    )
    assert auth["security_protocol"] == "SASL_PLAINTEXT"
    assert auth["sasl_mechanism"] == mechanism
    assert (auth["sasl_plain_username"], auth["sasl_plain_password"]) == ("cctv", "s3cret")
    assert auth["ssl_context"] is None


def test_sasl_ssl_carries_the_tls_context() -> None:
    auth = aiokafka_auth(
        **{
            "security.protocol": "SASL_SSL",
            "sasl.mechanisms": "SCRAM-SHA-512",
            "sasl.username": "cctv",
            "sasl.password": "s3cret",
        }
    )
    assert auth["security_protocol"] == "SASL_SSL"
    assert auth["sasl_mechanism"] == "SCRAM-SHA-512"
    assert isinstance(auth["ssl_context"], ssl.SSLContext)
    assert auth["ssl_context"].check_hostname is True


def test_ssl_verification_settings_are_honoured() -> None:
    auth = aiokafka_auth(
        **{
            "security.protocol": "SSL",
            "ssl.endpoint.identification.algorithm": "none",
        }
    )
    assert auth["security_protocol"] == "SSL"
    assert auth["ssl_context"].check_hostname is False
    assert auth["ssl_context"].verify_mode == ssl.CERT_REQUIRED
    unverified = aiokafka_auth(
        **{"security.protocol": "SSL", "enable.ssl.certificate.verification": "false"}
    )
    assert unverified["ssl_context"].verify_mode == ssl.CERT_NONE


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ({"sasl.mechanisms": "GSSAPI"}, "sasl.mechanisms"),
        ({"sasl.mechanism": "OAUTHBEARER"}, "sasl.mechanism"),
        ({"sasl.mechanism": "scram-sha-256"}, "sasl.mechanism"),  # librdkafka: case matters
        ({"sasl.mechanism": "PLAIN", "sasl.mechanisms": "SCRAM-SHA-256"}, "sasl.mechanisms"),
        ({}, "sasl.mechanism"),  # librdkafka's default is GSSAPI
        ({"sasl.mechanism": "PLAIN", "sasl.kerberos.keytab": "/k"}, "sasl.kerberos.keytab"),
        ({"sasl.mechanism": "PLAIN", "sasl.username": ""}, "sasl.username"),
    ],
)
def test_what_cannot_be_mapped_faithfully_is_a_config_error_naming_the_key(
    extra: dict[str, str], key: str
) -> None:
    base = {"security.protocol": "SASL_SSL", "sasl.username": "u", "sasl.password": "p"}
    with pytest.raises(ConfigError, match=f"kafka.extra.{key}"):
        broker_credentials(kafka(**(base | extra)))


def test_an_unknown_security_protocol_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="kafka.extra.security.protocol"):
        broker_credentials(kafka(**{"security.protocol": "SASL_TLS"}))


def test_a_secret_is_not_in_the_error() -> None:
    with pytest.raises(ConfigError) as caught:
        broker_credentials(
            kafka(
                **{
                    "security.protocol": "SASL_SSL",
                    "sasl.mechanism": "GSSAPI",
                    "sasl.username": "cctv",
                    "sasl.password": "hunter2-secret",
                }
            )
        )
    assert "hunter2-secret" not in str(caught.value)
