"""Unit tests for cctv/settings.py: sources and their priority, typo detection, secret masking."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cctv.exceptions import ConfigError
from cctv.settings import CONFIG_DIR, Settings

CH_URL = "clickhouse://default:s3cret-pw@ch.example:9000/cctv"


def _write(path: Path, data: object) -> Path:
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def test_defaults_without_any_source() -> None:
    settings = Settings.load(environ={})
    assert settings.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert settings.clickhouse.url is None  # embedded chDB
    assert settings.clickhouse.database == "cctv"
    assert settings.campaign_file == CONFIG_DIR / "campaigns" / "moi-2563.yaml"
    assert settings.provinces_file.is_file()


def test_default_configuration_files_are_package_data() -> None:
    """An installed wheel has no checkout around it: the defaults live inside the package."""
    import cctv

    settings = Settings.load(environ={})
    assert CONFIG_DIR.parent == Path(cctv.__file__).resolve().parent
    for path in (settings.kafka.topics_file, settings.campaign_file, settings.provinces_file):
        assert path.is_file()
        assert CONFIG_DIR in path.parents


def test_written_data_goes_under_data_dir_in_the_working_directory() -> None:
    settings = Settings.load(environ={})
    # Relative: each process resolves it against its working directory, never the package.
    assert settings.data_dir == Path("var")
    assert settings.clickhouse.chdb_path == Path("var") / "chdb"
    assert settings.processors.datadir == Path("var") / "faust"


def test_data_dir_moves_every_data_directory_not_given_explicitly() -> None:
    settings = Settings.load(
        environ={"CCTV_DATA_DIR": "/var/lib/cctv", "CCTV_CLICKHOUSE__CHDB_PATH": "/mnt/chdb"}
    )
    assert settings.data_dir == Path("/var/lib/cctv")
    assert settings.processors.datadir == Path("/var/lib/cctv/faust")
    assert settings.clickhouse.chdb_path == Path("/mnt/chdb")


def test_an_explicit_environ_means_the_process_environment_is_not_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CCTV_KAFKA__CLIENT_ID", "from-os-environ")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "elsewhere:9092")
    settings = Settings.load(environ={})
    assert settings.kafka.client_id == "cctv"
    assert settings.kafka.bootstrap_servers == "127.0.0.1:9092"


@pytest.mark.parametrize(
    ("name", "value", "read"),
    [
        (
            "CCTV_KAFKA__BOOTSTRAP_SERVERS",
            "k1:9092,k2:9092",
            lambda s: s.kafka.bootstrap_servers,
        ),
        ("KAFKA_BOOTSTRAP_SERVERS", "k1:9092", lambda s: s.kafka.bootstrap_servers),
        ("SCHEMA_REGISTRY_URL", "http://sr:8081", lambda s: s.kafka.schema_registry_url),
        ("CLICKHOUSE_URL", CH_URL, lambda s: s.clickhouse.url.get_secret_value()),
        ("CCTV_CLICKHOUSE__URL", CH_URL, lambda s: s.clickhouse.url.get_secret_value()),
        ("CCTV_PROCESSORS__STORE", "memory://", lambda s: s.processors.store),
        ("CCTV_PRODUCER_ID", "prov-TH-50-inventory", lambda s: s.producer_id),
    ],
)
def test_environment_keys_and_conventional_aliases(name: str, value: str, read) -> None:
    assert read(Settings.load(environ={name: value})) == value


def test_environment_values_are_coerced_to_the_field_types() -> None:
    settings = Settings.load(
        environ={
            "CCTV_SINK__BATCH_MAX_ROWS": "10",
            "CCTV_SINK__BATCH_MAX_SECONDS": "0.25",
            "CCTV_SINK__TOPICS": "[camera_registrations, dead_letters]",
            "CCTV_PROCESSORS__WEB_PORT": "0",
        }
    )
    assert settings.sink.batch_max_rows == 10
    assert settings.sink.batch_max_seconds == 0.25
    assert settings.sink.topics == ["camera_registrations", "dead_letters"]
    assert settings.processors.web_port == 0


def test_kafka_extra_settings_reach_the_client_config() -> None:
    settings = Settings.load(
        environ={
            "CCTV_KAFKA__EXTRA": '{"security.protocol": "SASL_SSL", "sasl.password": "pw-123"}'
        }
    )
    config = settings.kafka.client_config()
    assert config["security.protocol"] == "SASL_SSL"
    assert config["sasl.password"] == "pw-123"
    assert config["bootstrap.servers"] == "127.0.0.1:9092"


def test_priority_is_defaults_then_file_then_environment_then_overrides(tmp_path: Path) -> None:
    file = _write(
        tmp_path / "settings.yaml",
        {
            "kafka": {"client_id": "from-file", "bootstrap_servers": "file:9092"},
            "processors": {"app_id": "file-app", "store": "rocksdb://"},
            "producer_id": "file-producer",
        },
    )
    settings = Settings.load(
        settings_file=file,
        environ={"CCTV_KAFKA__CLIENT_ID": "from-env", "CCTV_PRODUCER_ID": "env-producer"},
        processors={"store": "memory://"},
        producer_id="override-producer",
    )
    assert settings.kafka.bootstrap_servers == "file:9092"  # file over default
    assert settings.kafka.client_id == "from-env"  # environment over file
    assert settings.producer_id == "override-producer"  # override over environment
    # Overrides merge into a section; they do not replace the file's other keys in it.
    assert settings.processors.app_id == "file-app"
    assert settings.processors.store == "memory://"


def test_settings_file_named_by_the_environment(tmp_path: Path) -> None:
    file = _write(tmp_path / "s.yaml", {"clickhouse": {"database": "cctv_test"}})
    settings = Settings.load(environ={"CCTV_SETTINGS_FILE": str(file)})
    assert settings.clickhouse.database == "cctv_test"


@pytest.mark.parametrize(
    ("environ", "key", "env_name"),
    [
        (
            {"CCTV_KAFKA__BOOTSTRAP_SERVER": "k:9092"},
            "kafka.bootstrap_server",
            "CCTV_KAFKA__BOOTSTRAP_SERVER",
        ),
        ({"CCTV_SINK__BATCH_ROWS": "5"}, "sink.batch_rows", "CCTV_SINK__BATCH_ROWS"),
        ({"CCTV_PRODUCERID": "x"}, "producerid", "CCTV_PRODUCERID"),
    ],
)
def test_a_mistyped_environment_key_is_an_error_naming_it(
    environ: dict[str, str], key: str, env_name: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.load(environ=environ)
    message = str(caught.value)
    assert key in message
    assert env_name in message
    assert "unknown key" in message


def test_a_mistyped_file_key_is_an_error_naming_it_and_the_file(tmp_path: Path) -> None:
    file = _write(tmp_path / "settings.yaml", {"clickhouse": {"databse": "x"}})
    with pytest.raises(ConfigError) as caught:
        Settings.load(settings_file=file, environ={})
    message = str(caught.value)
    assert "clickhouse.databse" in message
    assert "unknown key" in message
    assert str(file) in message


@pytest.mark.parametrize(
    ("environ", "key"),
    [
        ({"CCTV_SINK__BATCH_MAX_ROWS": "0"}, "sink.batch_max_rows"),
        ({"CCTV_SINK__BATCH_MAX_ROWS": "many"}, "sink.batch_max_rows"),
        ({"CCTV_CLICKHOUSE__DATABASE": "cctv-prod"}, "clickhouse.database"),
        ({"CLICKHOUSE_URL": "http://ch.example:8123"}, "clickhouse.url"),
        ({"CCTV_KAFKA__REPLICATION_FACTOR": "0"}, "kafka.replication_factor"),
    ],
)
def test_an_invalid_value_is_an_error_naming_the_key(environ: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.load(environ=environ)
    assert key in str(caught.value)


def test_an_invalid_clickhouse_url_error_does_not_print_the_password() -> None:
    # A common slip: the HTTP URL of clickhouse-connect instead of clickhouse://. The error
    # goes to the terminal and to logs, so it must not carry the password along.
    with pytest.raises(ConfigError) as caught:
        Settings.load(environ={"CLICKHOUSE_URL": "https://default:s3cret-pw@ch.example:8443/db"})
    message = str(caught.value)
    assert "clickhouse.url" in message
    assert "s3cret-pw" not in message


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "does not exist"),
        ("kafka: [unclosed", "not valid YAML"),
        ("- just\n- a list\n", "mapping"),
    ],
)
def test_a_bad_settings_file_is_a_clear_error(
    tmp_path: Path, content: str | None, expected: str
) -> None:
    file = tmp_path / "settings.yaml"
    if content is not None:
        file.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        Settings.load(settings_file=file, environ={})
    assert expected in str(caught.value)
    assert str(file) in str(caught.value)


def test_an_empty_settings_file_means_defaults(tmp_path: Path) -> None:
    file = tmp_path / "settings.yaml"
    file.write_text("", encoding="utf-8")
    assert Settings.load(settings_file=file, environ={}) == Settings.load(environ={})


def test_render_masks_every_secret() -> None:
    settings = Settings.load(
        environ={
            "CLICKHOUSE_URL": CH_URL,
            "CCTV_KAFKA__EXTRA": '{"sasl.username": "moi", "sasl.password": "kafka-pw-9"}',
        }
    )
    text = settings.render()
    assert "s3cret-pw" not in text
    assert "kafka-pw-9" not in text
    # Still says where the data goes, so an operator can check it.
    assert "ch.example:9000/cctv" in text
    rendered = yaml.safe_load(text)
    assert rendered["kafka"]["bootstrap_servers"] == "127.0.0.1:9092"
    assert set(rendered["kafka"]["extra"]) == {"sasl.username", "sasl.password"}


def test_render_is_yaml_that_loads_back_with_the_same_values(tmp_path: Path) -> None:
    settings = Settings.load(environ={"CCTV_PRODUCER_ID": "ผู้ผลิต-TH-50"})
    file = tmp_path / "rendered.yaml"
    file.write_text(settings.render(), encoding="utf-8")
    assert Settings.load(settings_file=file, environ={}) == settings
