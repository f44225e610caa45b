"""The dashboard's settings and how figures read on screen: no server needed."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from cctv import figures
from cctv.exceptions import ConfigError
from cctv.settings import Settings
from services.dashboard import present


def test_the_page_refreshes_within_ten_seconds_at_most() -> None:
    assert Settings.load(environ={}).dashboard.refresh_seconds <= 10
    with pytest.raises(ConfigError, match="dashboard.refresh_seconds"):
        Settings.load(environ={"CCTV_DASHBOARD__REFRESH_SECONDS": "11"})


def test_the_read_only_url_is_checked_and_never_shown() -> None:
    url = "clickhouse://analyst:s3cret@127.0.0.1:9000/cctv"
    settings = Settings.load(environ={"CCTV_DASHBOARD__CLICKHOUSE_URL": url})
    assert settings.dashboard.clickhouse_url.get_secret_value() == url
    rendered = settings.render()
    assert "s3cret" not in rendered
    assert "clickhouse://***@127.0.0.1:9000/cctv" in rendered
    with pytest.raises(ConfigError) as error:
        Settings.load(environ={"CCTV_DASHBOARD__CLICKHOUSE_URL": "http://analyst:s3cret@h/"})
    assert "s3cret" not in str(error.value)


def test_figures_read_as_people_expect() -> None:
    assert present.number(12345) == "12,345"
    assert present.number(None) == "–"
    assert present.pct(89.65517) == "89.7%"
    assert present.baht(Decimal("10000001.00")) == "10,000,001.00"
    deadline = dt.datetime(2020, 12, 31, 16, 59, 59, 999000, tzinfo=dt.UTC)
    assert present.be(deadline) == "31 ธ.ค. 2563 23:59 น."
    assert present.be_date(dt.date(2021, 1, 1)) == "1 ม.ค. 2564"
    assert present.iso(deadline) == "2020-12-31T16:59:59.999Z"


def test_every_status_body_stage_and_alert_has_thai_and_english() -> None:
    for table, keys in (
        (present.STATUS, figures.STATUSES),
        (present.BODY, figures.BODIES),
        (present.STAGE, (figures.LATE, figures.DUE, figures.DEADLINE_PASSED, figures.NO_DEADLINE)),
        (present.ALERT, (*figures.CAMERA_ALERTS, *figures.QUOTA_ALERTS, "LATE_SUBMISSION")),
    ):
        for key in keys:
            th, en = table[key]
            assert any("\u0e00" <= ch <= "\u0e7f" for ch in th), key
            assert en.isascii(), key
    assert set(present.STATUS_MARK) == set(figures.STATUSES)
    assert present.label(present.ALERT, "SOMETHING_NEW") == ("SOMETHING_NEW", "SOMETHING_NEW")
