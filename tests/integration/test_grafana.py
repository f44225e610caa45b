"""Grafana for analysts: the provisioning files, their wiring into docker-compose.yml, and the
national dashboard's SQL run on both real engines.

There is no Grafana (nor Docker) where the tests run, so Grafana's part is played here: the
files are parsed and cross-checked (plugin id, datasource uid in every panel, the read-only
user and its password variable), and every panel's SQL is expanded as the plugin expands it
(`$__timeFilter`, `$__dateFilter`, the dashboard's variables) and run against a database
populated through the migrations, on embedded chDB and, as the read-only analyst, on the
18.16 server. Each panel's answer is checked against what the rows say it must be.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

from cctv.storage.engines import open_engine
from cctv.storage.migrations import migrate
from tests.integration.test_migrations import TZ, Writer, quota, window
from tests.samples import heartbeat
from tests.unit.test_docker_compose import environment_of

REPO_ROOT = Path(__file__).resolve().parents[2]
GRAFANA = REPO_ROOT / "infra" / "grafana"
DATASOURCE_FILE = GRAFANA / "provisioning" / "datasources" / "clickhouse.yaml"
PROVIDER_FILE = GRAFANA / "provisioning" / "dashboards" / "cctv.yaml"
DASHBOARD_FILE = GRAFANA / "dashboards" / "national.json"
COMPOSE_USERS = REPO_ROOT / "infra" / "clickhouse" / "compose" / "users.d" / "analyst.xml"
COMPOSE_CONFIG = REPO_ROOT / "infra" / "clickhouse" / "compose" / "config.d"
LOCAL_USERS = REPO_ROOT / "infra" / "clickhouse" / "users.xml"

PLUGIN = "grafana-clickhouse-datasource"
# What the dashboard may read: the analysts' views and the two base tables they have no view of.
READABLE = {
    "v_camera_status",
    "v_availability_daily",
    "v_quota_daily",
    "v_cameras",
    "alerts",
    "dead_letters",
}


def _compose() -> dict[str, Any]:
    return yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text(encoding="utf-8"))


def _datasource() -> dict[str, Any]:
    (source,) = yaml.safe_load(DATASOURCE_FILE.read_text(encoding="utf-8"))["datasources"]
    return source


def _dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD_FILE.read_text(encoding="utf-8"))


def _queries(dashboard: dict[str, Any]) -> dict[str, str]:
    """Every SQL text of the dashboard: "panel <id>" per panel target, "variable <name>"."""
    found = {}
    for panel in dashboard["panels"]:
        (target,) = panel["targets"]
        found[f"panel {panel['id']}"] = target["rawSql"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            found[f"variable {variable['name']}"] = variable["query"]
    return found


# -- the files and their wiring ---------------------------------------------------------------


def test_compose_runs_grafana_with_the_plugin_and_the_provisioning() -> None:
    services = _compose()["services"]
    grafana = services["grafana"]
    env = environment_of(grafana)
    assert PLUGIN in env["GF_INSTALL_PLUGINS"].replace(" ", ",").split(",")
    mounts = {
        Path(m.split(":")[0]).resolve(): m.split(":")[1]
        for m in (str(v).replace("./", f"{REPO_ROOT}/", 1) for v in grafana["volumes"])
        if m.startswith("/")
    }
    assert mounts[(GRAFANA / "provisioning").resolve()] == "/etc/grafana/provisioning"
    provider = yaml.safe_load(PROVIDER_FILE.read_text(encoding="utf-8"))["providers"][0]
    assert provider["type"] == "file"
    assert mounts[(GRAFANA / "dashboards").resolve()] == provider["options"]["path"]
    assert grafana["depends_on"]["clickhouse"]["condition"] == "service_healthy"
    assert any(str(p).startswith("127.0.0.1:") for p in grafana["ports"])

    # The datasource's password is the variable the ClickHouse service gives its analyst.
    source = _datasource()
    (variable,) = re.findall(r"^\$\{(\w+)\}$", source["secureJsonData"]["password"])
    clickhouse_env = environment_of(services["clickhouse"])
    assert env[variable] == clickhouse_env[variable], "Grafana and ClickHouse disagree"
    user = ET.parse(COMPOSE_USERS).getroot().find("users/analyst")
    assert user is not None and user.find("password").get("from_env") == variable
    ch_mounts = [str(v) for v in services["clickhouse"]["volumes"]]
    assert any(m.startswith("./infra/clickhouse/compose/users.d/analyst.xml:") for m in ch_mounts)
    assert all(
        any(m.startswith(f"./infra/clickhouse/compose/config.d/{f.name}:") for m in ch_mounts)
        for f in COMPOSE_CONFIG.iterdir()
    )


def test_datasource_is_the_official_plugin_as_the_read_only_user() -> None:
    source = _datasource()
    assert source["type"] == PLUGIN
    data = source["jsonData"]
    assert (data["host"], data["port"], data["protocol"]) == ("clickhouse", 9000, "native")
    assert data["username"] == "analyst"
    compose_ch = environment_of(_compose()["services"]["clickhouse"])
    assert data["defaultDatabase"] == compose_ch["CLICKHOUSE_DB"]
    assert "password" not in data  # only in secureJsonData, from the environment

    # `analyst` is read-only in both server set-ups: readonly = 1, with only the setting the
    # plugin must set per query (max_execution_time) changeable.
    root = ET.parse(COMPOSE_USERS).getroot()
    profile = root.find(f"profiles/{root.find('users/analyst/profile').text}")
    assert profile.find("readonly").text == "1"
    constraints = profile.find("constraints")
    assert [c.tag for c in constraints] == ["max_execution_time"]
    assert constraints.find("max_execution_time/changeable_in_readonly") is not None
    local = ET.parse(LOCAL_USERS).getroot()
    local_profile = local.find("users/analyst/profile").text
    assert local.find(f"profiles/{local_profile}/readonly").text == "1"


def test_every_panel_reads_through_the_provisioned_datasource() -> None:
    uid = _datasource()["uid"]
    dashboard = _dashboard()
    titles = {p["title"] for p in dashboard["panels"]}
    for wanted in (
        "Provinces meeting quota",
        "Cameras selected / registered",
        "Cameras online now",
        "Availability per province per day (%)",
        "Open alerts",
        "Dead letters by reason",
    ):
        assert wanted in titles
    for panel in dashboard["panels"]:
        assert panel["datasource"] == {"type": PLUGIN, "uid": uid}, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == {"type": PLUGIN, "uid": uid}, panel["title"]
            assert target["editorType"] == "sql"
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            assert variable["datasource"]["uid"] == uid
    for name, sql in _queries(dashboard).items():
        relations = set(re.findall(r"\$\{database\}\.(\w+)", sql))
        assert relations and relations <= READABLE, (name, relations - READABLE)
        assert not re.search(r"\b(FROM|JOIN)\s+(?!\$\{database\}\.|\()", sql), (name, sql)


# -- the SQL on both engines -----------------------------------------------------------------


def expand(sql: str, *, variables: dict[str, str], start: dt.datetime, end: dt.datetime) -> str:
    """As Grafana and the plugin do: dashboard variables, then the plugin's time macros
    (pkg/macros/macros.go of grafana/clickhouse-datasource)."""
    for name, value in variables.items():
        sql = sql.replace(f"${{{name}}}", value)

    def time_filter(match: re.Match[str]) -> str:
        column = match.group(1)
        return (
            f"{column} >= toDateTime({int(start.timestamp())}) AND "
            f"{column} <= toDateTime({int(end.timestamp())})"
        )

    def date_filter(match: re.Match[str]) -> str:
        column = match.group(1)
        return f"{column} >= toDate('{start:%Y-%m-%d}') AND {column} <= toDate('{end:%Y-%m-%d}')"

    sql = re.sub(r"\$__timeFilter\((\w+)\)", time_filter, sql)
    sql = re.sub(r"\$__dateFilter\((\w+)\)", date_filter, sql)
    assert "$" not in sql, f"a macro or variable this test does not expand: {sql}"
    return sql


def alert(province: str, subject: str, kind: str, at: dt.datetime, campaign: str | None = None):
    return {
        "event_id": str(uuid.uuid4()),
        "occurred_at": at,
        "producer": "health-test",
        "province_code": province,
        "alert_type": kind,
        "severity": "WARNING",
        "subject_id": subject,
        "message_en": f"{subject}: {kind}",
        "message_th": f"{subject}: {kind}",
        "campaign_id": campaign,
    }


def dead_letter(reason: str, at: dt.datetime, event_id: str | None = None) -> dict[str, Any]:
    return {
        "event_id": event_id or str(uuid.uuid4()),
        "occurred_at": at,
        "producer": "sink-test",
        "province_code": "TH-50",
        "source_topic": "cctv.inbound.camera-heartbeats.v1",
        "source_partition": 0,
        "source_offset": 7,
        "source_key": None,
        "payload": b"\x00bad",
        "reason_code": reason,
        "error": "bad record",
        "field": None,
        "processor": "sink",
    }


@pytest.fixture
def populated(engine_stack):
    """A migrated database holding a little of everything the dashboard shows."""
    ctx = engine_stack.context()
    store = ctx.open_store()
    migrate(store, timezone=TZ)
    writer = Writer(ctx, store)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    day = now - dt.timedelta(days=1)
    campaign = quota("TH-50", now, 0)["campaign_id"]
    writer.put(
        "quota_progress",
        [
            quota("TH-50", now - dt.timedelta(hours=3), 5, "AT_RISK"),
            quota("TH-50", now - dt.timedelta(hours=1), 20, "MET"),
            quota("TH-10", now - dt.timedelta(hours=2), 3, "AT_RISK"),
        ],
    )
    writer.put(
        "camera_heartbeat",
        [
            {**heartbeat("CM-1", 0), "occurred_at": now - dt.timedelta(seconds=10)},
            {**heartbeat("CM-2", 0), "occurred_at": now - dt.timedelta(hours=2)},
            {
                **heartbeat("CM-9", 0, "TH-10"),
                "occurred_at": now - dt.timedelta(seconds=5),
                "reachable": False,
                "error_kind": "timeout",
                "fps": None,
            },
        ],
    )
    writer.put(
        "health_window",
        [window("TH-50", day, 4, 4), window("TH-50", day + dt.timedelta(minutes=1), 4, 2)],
    )
    hour = dt.timedelta(hours=1)
    writer.put(
        "alert",
        [
            alert("TH-50", "CM-1", "CAMERA_OFFLINE", now - 3 * hour),
            alert("TH-50", "CM-1", "CAMERA_RECOVERED", now - 2 * hour),  # closed
            alert("TH-50", "CM-2", "CAMERA_DEGRADED", now - 2 * hour),
            alert("TH-10", "CM-9", "CAMERA_OFFLINE", now - hour),
            alert("TH-10", "TH-10", "QUOTA_AT_RISK", now - 2 * hour, campaign),
            alert("TH-50", "TH-50", "QUOTA_AT_RISK", now - 3 * hour, campaign),  # met since
        ],
    )
    twice = str(uuid.uuid4())
    writer.put(
        "dead_letter",
        [
            dead_letter("invalid_field", now - hour, twice),
            dead_letter("invalid_field", now - hour, twice),  # the same one stored again
            dead_letter("invalid_field", now - 2 * hour),
            dead_letter("undecodable", now - hour),
            dead_letter("unknown_schema", now - dt.timedelta(days=30)),  # out of range
        ],
    )
    store.engine.close()
    if engine_stack.clickhouse_url:
        url = engine_stack.clickhouse_url
        # The fixture's server has the read-only analyst (infra/clickhouse/users.xml).
        if url.startswith("clickhouse://default:@"):
            url = url.replace("clickhouse://default:@", "clickhouse://analyst:analyst@", 1)
        engine = open_engine(url=url, chdb_path=Path(), http_port=None)
        run = engine.query
    else:
        engine = open_engine(url=None, chdb_path=ctx.settings.clickhouse.chdb_path)
        run = engine.query_read_only
    dashboard = _dashboard()
    variables = {
        v["name"]: v["query"] for v in dashboard["templating"]["list"] if v["type"] == "constant"
    }
    variables["database"] = ctx.settings.clickhouse.database
    try:
        yield run, variables, campaign, now
    finally:
        engine.close()


def test_every_panel_query_answers_what_the_rows_say(populated) -> None:
    run, variables, campaign, now = populated
    start, end = now - dt.timedelta(days=7), now + dt.timedelta(minutes=1)
    queries = _queries(_dashboard())

    def answer(name: str) -> list[dict[str, Any]]:
        values = {**variables, "campaign": campaign}
        return run(expand(queries[name], variables=values, start=start, end=end))

    assert [r["campaign_id"] for r in answer("variable campaign")] == [campaign]
    panels = {p["title"]: f"panel {p['id']}" for p in _dashboard()["panels"]}

    (met,) = answer(panels["Provinces meeting quota"])
    assert (int(met["provinces_met"]), int(met["provinces_reporting"])) == (1, 2)

    (selected,) = answer(panels["Cameras selected / registered"])
    assert (int(selected["cameras_selected"]), int(selected["cameras_registered"])) == (23, 200)
    assert float(selected["selected_pct"]) == pytest.approx(11.5)

    (online,) = answer(panels["Cameras online now"])
    assert (int(online["online"]), int(online["cameras"])) == (1, 3)

    open_alerts = {r["alert_type"]: int(r["open_alerts"]) for r in answer(panels["Open alerts"])}
    assert open_alerts == {"CAMERA_DEGRADED": 1, "CAMERA_OFFLINE": 1, "QUOTA_AT_RISK": 1}

    availability = answer(panels["Availability per province per day (%)"])
    assert [r["province_code"] for r in availability] == ["TH-50"]
    assert float(availability[0]["availability_pct"]) == pytest.approx(75.0)

    dead = [
        (r["reason_code"], int(r["dead_letters"])) for r in answer(panels["Dead letters by reason"])
    ]
    assert dead == [("invalid_field", 2), ("undecodable", 1)]

    table = {r["province_code"]: r for r in answer(panels["Quota by province"])}
    assert (table["TH-50"]["status"], int(table["TH-50"]["selected"])) == ("MET", 20)
    assert (table["TH-10"]["status"], int(table["TH-10"]["required"])) == ("AT_RISK", 20)
