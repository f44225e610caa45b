"""Governors' status reports, built from cctv/figures.py and written as HTML and CSV.

`province_report` and `national_report` read the figures as they stood at the end of the
report's day (campaign timezone), or now when the day is today: `figures.*(snapshot=True)`.
They return a `Report`: plain figures and tables, each value with its kind, so that the HTML
(`render_html`) and the CSV files (`csv_files`) show the same numbers -- the HTML formatted for
people (B.E. dates, thousands separators, Thai with English), the CSV for programs (ISO dates,
plain numbers) with the Thai text beside each date and label.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import functools
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2

from cctv import figures as f
from cctv.campaign import Campaign
from cctv.dates import format_be_date, format_be_long, format_be_long_time, to_be_year
from cctv.exceptions import InputError
from cctv.provinces import Province, Provinces
from cctv.settings import Settings
from cctv.storage.engines import Engine
from services.dashboard.present import BODY, FAULT, KIND, STAGE, STATUS
from services.reports.charts import bar_chart

FORMATS = ("html", "csv")
NONE = "–"

# Kinds of value: how each is shown in the HTML and written in the CSV.
INT, PCT, BAHT, TEXT, DATE, TIME, LABEL = "int", "pct", "baht", "text", "date", "time", "label"
# Labels of the symbols a report shows, (Thai, English).
LABELS: dict[str, dict[str, tuple[str, str]]] = {
    "status": STATUS,
    "body": BODY,
    "stage": STAGE,
    "kind": KIND,
    "camera": {
        "OFFLINE": ("ขาดการเชื่อมต่อ", "Offline"),
        "DEGRADED": ("ภาพมีปัญหา", "Degraded"),
        "ONLINE": ("ใช้งานได้", "Online"),
        "SILENT": ("ไม่ได้รับสัญญาณในวันนั้น", "Not heard that day"),
    },
    "yesno": {"yes": ("ใช่", "Yes"), "no": ("ไม่ใช่", "No")},
}


@dataclass(frozen=True)
class Column:
    key: str
    th: str
    en: str
    kind: str = TEXT
    labels: str | None = None  # for LABEL: which of LABELS


@dataclass(frozen=True)
class Figure:
    key: str
    th: str
    en: str
    kind: str
    value: Any
    labels: str | None = None


@dataclass(frozen=True)
class Table:
    key: str
    th: str
    en: str
    columns: list[Column]
    rows: list[dict[str, Any]]
    empty_th: str = "ไม่มีข้อมูล"
    empty_en: str = "No data"
    total: dict[str, Any] | None = None  # a totals row, shown last (not in the CSV rows)


@dataclass(frozen=True)
class Section:
    key: str
    th: str
    en: str
    figures: list[Figure] = field(default_factory=list)
    chart: str = ""  # inline SVG
    tables: list[Table] = field(default_factory=list)
    note_th: str = ""
    note_en: str = ""


@dataclass(frozen=True)
class Report:
    kind: str  # "province" | "national"
    day: dt.date
    as_of: dt.datetime  # UTC: end of the day (campaign timezone), or now for today
    generated_at: dt.datetime
    title_th: str
    title_en: str
    campaign: Campaign
    source: str
    sections: list[Section]
    province: Province | None = None

    @property
    def slug(self) -> str:
        who = self.province.code if self.province else "national"
        return f"cctv-report-{who}-{self.day.isoformat()}"

    def figure(self, key: str) -> Figure:
        for section in self.sections:
            for fig in section.figures:
                if fig.key == key:
                    return fig
        raise KeyError(key)

    def tables(self) -> list[Table]:
        return [t for s in self.sections for t in s.tables]


def as_of_instant(day: dt.date, *, campaign: Campaign, now: dt.datetime) -> dt.datetime:
    """The instant a report of `day` shows: the last millisecond of that day in the campaign's
    timezone, or `now` while that day is not over. InputError for a day still to come."""
    end = campaign.due(day)
    start = campaign.end_of_day(day - dt.timedelta(days=1))
    if now < start:
        raise InputError(
            f"date: {day.isoformat()} ({format_be_long(day)}) has not begun yet "
            f"in {campaign.timezone}",
            field="date",
        )
    return min(end, now)


# -- building the reports ------------------------------------------------------------------


def province_report(
    engine: Engine,
    *,
    database: str,
    settings: Settings,
    campaign: Campaign,
    provinces: Provinces,
    province_code: str,
    day: dt.date,
    now: dt.datetime | None = None,
    source: str = "",
) -> Report:
    """One province's report for `day`. InputError for an unknown province or a future day."""
    now = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    province = provinces.get(province_code)
    as_of = as_of_instant(day, campaign=campaign, now=now)
    d = f.province_detail(
        engine,
        database=database,
        settings=settings,
        province_code=province.code,
        now=as_of,
        snapshot=True,
    )
    p = d.province
    deadline_day = d.deadline.astimezone(_zone(campaign)).date()
    days_left = (deadline_day - day).days
    today = next((a for a in d.availability if a.day == d.today), None)

    quota_figures = [
        Figure("status", "สถานะ", "Status", LABEL, p.status, "status"),
        Figure("selected_cameras", "กล้องที่คัดเลือกแล้ว", "Cameras selected", INT, p.selected_cameras),
        Figure("required_cameras", "กล้องที่ต้องคัดเลือก", "Cameras required", INT, p.required_cameras),
        Figure(
            "registered_cameras",
            "กล้องที่ลงทะเบียน (ฐานคำนวณ)",
            "Registered cameras (quota base)",
            INT,
            p.registered_cameras,
        ),
        Figure("selected_pct", "ความคืบหน้า", "Progress", PCT, p.selected_pct),
        Figure("deadline", "กำหนดส่ง", "Deadline", DATE, deadline_day),
        Figure(
            "days_to_deadline",
            "จำนวนวันถึงกำหนด (ติดลบ = เลยกำหนด)",
            "Days to the deadline (negative: past it)",
            INT,
            days_left,
        ),
        Figure("quota_updated_at", "ตัวเลขล่าสุดเมื่อ", "Figure last updated", TIME, p.quota_updated_at),
    ]
    if not p.in_campaign:
        quota_figures = quota_figures[:1]
    quota_table = Table(
        "quota",
        "ความคืบหน้ารายวัน",
        "Progress by day",
        [
            Column("day", "วันที่", "Date", DATE),
            Column("registered_cameras", "ลงทะเบียน", "Registered", INT),
            Column("selected_cameras", "คัดเลือกแล้ว", "Selected", INT),
            Column("required_cameras", "ต้องคัดเลือก", "Required", INT),
            Column("status", "สถานะ", "Status", LABEL, "status"),
        ],
        [
            {
                "day": q.day,
                "registered_cameras": q.registered_cameras,
                "selected_cameras": q.selected_cameras,
                "required_cameras": q.required_cameras,
                "status": q.status,
            }
            for q in d.quota
        ],
        "ยังไม่มีตัวเลขความคืบหน้า",
        "No quota figure yet",
    )
    quota_chart = ""
    if d.quota:
        quota_chart = bar_chart(
            [(_short_day(q.day), q.selected_cameras) for q in d.quota],
            label="กล้องที่คัดเลือกแล้วรายวัน เทียบกับจำนวนที่ต้องคัดเลือก "
            "(Cameras selected by day against the required number)",
            top=max(max(q.required_cameras, q.selected_cameras) for q in d.quota),
            reference=d.quota[-1].required_cameras,
            reference_label=f"ต้องคัดเลือก (required) {d.quota[-1].required_cameras:,}",
        )

    availability_figures = [
        Figure(
            "availability_pct",
            "สัญญาณที่ได้รับสำเร็จ (ทั้งวัน)",
            "Reachable heartbeats (the day)",
            PCT,
            p.availability_pct,
        ),
        Figure(
            "camera_availability_pct",
            "สัดส่วนกล้องที่ไม่ขาดการเชื่อมต่อ (เฉลี่ย)",
            "Cameras not offline (mean)",
            PCT,
            p.camera_availability_pct,
        ),
        Figure(
            "heartbeats", "จำนวนสัญญาณตรวจสอบ", "Heartbeats", INT, today.heartbeats if today else 0
        ),
        Figure(
            "cameras_heard", "กล้องที่ส่งสัญญาณในวันนั้น", "Cameras heard that day", INT, p.cameras_watched
        ),
        Figure(
            "cameras_online",
            "กล้องที่ใช้งานได้ ณ เวลารายงาน",
            "Cameras online at the time",
            INT,
            p.cameras_online,
        ),
        Figure(
            "cameras_registered",
            "กล้องในทะเบียน",
            "Cameras in the inventory",
            INT,
            p.cameras_registered,
        ),
        Figure(
            "cameras_linked",
            "เชื่อมโยงกับระบบกลางแล้ว",
            "Linked to the central system",
            INT,
            p.cameras_linked,
        ),
        Figure("open_alerts", "การแจ้งเตือนที่ยังไม่ปิด", "Open alerts", INT, p.open_alerts),
    ]
    availability_table = Table(
        "availability",
        f"แนวโน้ม {len(d.availability)} วัน",
        "Trend by day",
        [
            Column("day", "วันที่", "Date", DATE),
            Column("heartbeats", "สัญญาณ", "Heartbeats", INT),
            Column("availability_pct", "ได้รับสำเร็จ", "Reachable", PCT),
            Column("camera_availability_pct", "กล้องไม่ขาดการเชื่อมต่อ", "Cameras not offline", PCT),
        ],
        [
            {
                "day": a.day,
                "heartbeats": a.heartbeats,
                "availability_pct": a.availability_pct,
                "camera_availability_pct": a.camera_availability_pct,
            }
            for a in d.availability
        ],
    )
    availability_chart = ""
    if d.availability:
        availability_chart = bar_chart(
            [(_short_day(a.day), _round1(a.availability_pct)) for a in d.availability],
            label="ร้อยละของสัญญาณที่ได้รับสำเร็จรายวัน (Reachable heartbeats by day, %)",
            top=100.0,
            unit="%",
        )

    cameras_table = Table(
        "cameras",
        "กล้องที่มีปัญหามากที่สุด",
        "Worst cameras",
        [
            Column("camera_id", "รหัสกล้อง", "Camera", TEXT),
            Column("name", "ชื่อ / ที่ตั้ง", "Name / location", TEXT),
            Column("state", "สถานะ", "State", LABEL, "camera"),
            Column("last_seen", "ได้รับสัญญาณล่าสุด", "Last heard", TIME),
            Column("problem", "ปัญหา", "Problem", TEXT),
            Column("availability_pct", "ได้รับสำเร็จ (วันนั้น)", "Reachable (the day)", PCT),
            Column("heartbeats", "สัญญาณ (วันนั้น)", "Heartbeats (the day)", INT),
        ],
        [_camera_row(c) for c in d.worst_cameras],
        "ไม่มีกล้องที่มีปัญหา",
        "No camera with a problem",
    )
    projects_table = _projects_table(d.projects, _zone(campaign))

    sections = [
        Section("quota", "การคัดเลือกกล้องเพื่อเชื่อมโยงกับระบบกลาง",
                "Selection of cameras for the central system", quota_figures, quota_chart,
                [quota_table] if p.in_campaign else [],
                *(_quota_note(campaign) if p.in_campaign else _outside_note())),
        Section("availability", "ความพร้อมใช้งานของกล้อง", "Camera availability",
                availability_figures, availability_chart, [availability_table]),
        Section("cameras", "กล้องที่ต้องติดตาม", "Cameras to follow up", [], "",
                [cameras_table]),
        Section("projects", "โครงการและกำหนดเวลา (ล่าช้าก่อน)",
                "Projects and deadlines (late first)",
                [
                    Figure("projects", "โครงการทั้งหมด", "Projects", INT, p.projects),
                    Figure("late_projects", "โครงการที่ล่าช้า", "Late projects", INT,
                           p.late_projects),
                ],
                "", [projects_table]),
    ]  # fmt: skip
    return Report(
        kind="province",
        day=day,
        as_of=as_of,
        generated_at=now,
        title_th=f"รายงานสถานะการเชื่อมโยงกล้องโทรทัศน์วงจรปิด (CCTV) {_th_name(province)}",
        title_en=f"CCTV linking status report: {province.name_en} ({province.code})",
        campaign=campaign,
        source=source,
        sections=sections,
        province=province,
    )


def national_report(
    engine: Engine,
    *,
    database: str,
    settings: Settings,
    campaign: Campaign,
    day: dt.date,
    now: dt.datetime | None = None,
    source: str = "",
) -> Report:
    """The whole country for `day`: one row per province (77) and the national totals."""
    now = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    as_of = as_of_instant(day, campaign=campaign, now=now)
    o = f.national_overview(engine, database=database, settings=settings, now=as_of, snapshot=True)
    deadline_day = campaign.selection.deadline
    national = [
        Figure("provinces_met", "จังหวัดที่คัดเลือกครบ", "Provinces that met the quota", INT,
               o.provinces_met),
        Figure("provinces_in_campaign", "จังหวัดในโครงการ", "Provinces in the campaign", INT,
               o.provinces_in_campaign),
        Figure("selected_cameras", "กล้องที่คัดเลือกแล้ว", "Cameras selected", INT,
               o.selected_cameras),
        Figure("required_cameras", "กล้องที่ต้องคัดเลือก", "Cameras required", INT,
               o.required_cameras),
        Figure("registered_cameras", "กล้องที่ลงทะเบียน (ฐานคำนวณ)",
               "Registered cameras (quota base)", INT, o.registered_cameras),
        Figure("deadline", "กำหนดส่ง", "Deadline", DATE, deadline_day),
        Figure("availability_pct", "สัญญาณที่ได้รับสำเร็จ (ทั้งวัน)",
               "Reachable heartbeats (the day)", PCT, o.availability_pct),
        Figure("heartbeats", "จำนวนสัญญาณตรวจสอบ", "Heartbeats", INT, o.heartbeats_today),
        Figure("cameras_registered", "กล้องในทะเบียน", "Cameras in the inventory", INT,
               o.cameras_registered),
        Figure("cameras_heard", "กล้องที่ส่งสัญญาณในวันนั้น", "Cameras heard that day", INT,
               o.cameras_watched),
        Figure("cameras_online", "กล้องที่ใช้งานได้ ณ เวลารายงาน", "Cameras online at the time",
               INT, o.cameras_online),
        Figure("open_alerts", "การแจ้งเตือนที่ยังไม่ปิด", "Open alerts", INT, o.open_alerts),
        Figure("projects", "โครงการทั้งหมด", "Projects", INT, o.projects),
        Figure("late_projects", "โครงการที่ล่าช้า", "Late projects", INT, o.late_projects),
    ]  # fmt: skip
    columns = [
        Column("province_code", "รหัส", "Code", TEXT),
        Column("name_th", "จังหวัด", "Province (Thai)", TEXT),
        Column("name_en", "Province", "Province", TEXT),
        Column("status", "สถานะ", "Status", LABEL, "status"),
        Column("selected_cameras", "คัดเลือก", "Selected", INT),
        Column("required_cameras", "ต้องคัดเลือก", "Required", INT),
        Column("registered_cameras", "ฐานคำนวณ", "Quota base", INT),
        Column("selected_pct", "ความคืบหน้า", "Progress", PCT),
        Column("cameras_registered", "กล้องในทะเบียน", "Inventory", INT),
        Column("cameras_heard", "ส่งสัญญาณ", "Heard", INT),
        Column("cameras_online", "ใช้งานได้", "Online", INT),
        Column("availability_pct", "ได้รับสำเร็จ", "Reachable", PCT),
        Column("open_alerts", "แจ้งเตือน", "Open alerts", INT),
        Column("projects", "โครงการ", "Projects", INT),
        Column("late_projects", "ล่าช้า", "Late", INT),
    ]
    rows = [
        {
            "province_code": p.province_code,
            "name_th": p.name_th,
            "name_en": p.name_en,
            "status": p.status,
            "selected_cameras": p.selected_cameras,
            "required_cameras": p.required_cameras,
            "registered_cameras": p.registered_cameras,
            "selected_pct": p.selected_pct,
            "cameras_registered": p.cameras_registered,
            "cameras_heard": p.cameras_watched,
            "cameras_online": p.cameras_online,
            "availability_pct": p.availability_pct,
            "open_alerts": p.open_alerts,
            "projects": p.projects,
            "late_projects": p.late_projects,
        }
        for p in o.provinces
    ]
    total = {
        "province_code": "",
        "name_th": "รวมทั้งประเทศ",
        "name_en": "National total",
        "status": None,
        "selected_cameras": o.selected_cameras,
        "required_cameras": o.required_cameras,
        "registered_cameras": o.registered_cameras,
        "selected_pct": (o.selected_cameras * 100 / o.required_cameras)
        if o.required_cameras
        else None,
        "cameras_registered": o.cameras_registered,
        "cameras_heard": o.cameras_watched,
        "cameras_online": o.cameras_online,
        "availability_pct": o.availability_pct,
        "open_alerts": o.open_alerts,
        "projects": o.projects,
        "late_projects": o.late_projects,
    }
    status_figures = [
        Figure(f"status_count.{s}", *label_of("status", s), INT, o.status_counts[s])
        for s in f.STATUSES
    ]
    sections = [
        Section("national", "ภาพรวมทั้งประเทศ", "The country at a glance", national),
        Section("statuses", "จำนวนจังหวัดตามสถานะ", "Provinces by status", status_figures),
        Section("provinces", "รายจังหวัด (77 จังหวัด)", "By province (77)", [], "",
                [Table("provinces", "รายจังหวัด", "Provinces", columns, rows, total=total)],
                *_quota_note(campaign)),
    ]  # fmt: skip
    return Report(
        kind="national",
        day=day,
        as_of=as_of,
        generated_at=now,
        title_th="รายงานสถานะการเชื่อมโยงกล้องโทรทัศน์วงจรปิด (CCTV) ทั่วประเทศ",
        title_en="CCTV linking status report: the whole country",
        campaign=campaign,
        source=source,
        sections=sections,
    )


def _camera_row(c: f.CameraHealth) -> dict[str, Any]:
    if c.last_seen is None:
        state = "SILENT"
    elif not c.online:
        state = "OFFLINE"
    elif c.faults:
        state = "DEGRADED"
    else:
        state = "ONLINE"
    problems = [f"{th} ({en})" for th, en in (FAULT.get(x, (x, x)) for x in c.faults)]
    if c.error_kind:
        problems.insert(0, c.error_kind)
    names = " / ".join(x for x in (c.name_th, c.name_en) if x)
    if c.location:
        names = f"{names} · {c.location}" if names else c.location
    return {
        "camera_id": c.camera_id,
        "name": names or NONE,
        "state": state,
        "last_seen": c.last_seen,
        "problem": ", ".join(problems) or NONE,
        "availability_pct": c.availability_pct,
        "heartbeats": c.heartbeats_today,
    }


def _projects_table(projects: Sequence[f.Project], zone: dt.tzinfo) -> Table:
    rows = []
    for p in projects:
        destinations = []
        for d in p.destinations:
            th, en = label_of("body", d.body)
            sth, sen = label_of("stage", d.stage)
            due = f" {format_be_long(d.deadline.astimezone(zone).date())}" if d.deadline else ""
            destinations.append(f"{th} ({en}){due}: {sth} ({sen})")
        rows.append(
            {
                "project_id": p.project_id,
                "title": p.title,
                "agency": p.agency,
                "kind": p.kind,
                "budget": p.budget,
                "submitted_at": p.submitted_at,
                "destinations": "; ".join(destinations) or NONE,
                "late": "yes" if p.late else "no",
                "routing_version": p.routing_version,
            }
        )
    return Table(
        "projects",
        "โครงการ",
        "Projects",
        [
            Column("project_id", "รหัสโครงการ", "Project", TEXT),
            Column("title", "ชื่อโครงการ", "Title", TEXT),
            Column("agency", "หน่วยงาน", "Agency", TEXT),
            Column("kind", "ประเภท", "Kind", LABEL, "kind"),
            Column("budget", "งบประมาณ (บาท)", "Budget (baht)", BAHT),
            Column("submitted_at", "ยื่นเมื่อ", "Submitted", TIME),
            Column("destinations", "ส่งถึง · กำหนด · สถานะ", "Sent to · due · stage", TEXT),
            Column("late", "ล่าช้า", "Late", LABEL, "yesno"),
            Column("routing_version", "ฉบับที่", "Version", INT),
        ],
        rows,
        "ไม่มีโครงการ",
        "No project",
    )


def _quota_note(campaign: Campaign) -> tuple[str, str]:
    s = campaign.selection
    return (
        f"ตามหนังสือสั่งการ ({campaign.campaign_id} ฉบับกฎ {campaign.rule_version}) จังหวัดในโครงการ"
        f"คัดเลือกกล้องร้อยละ {s.percentage} ของกล้องที่ลงทะเบียน ภายในวันที่ "
        f"{format_be_long(s.deadline)}",
        f"Under the directive ({campaign.campaign_id}, rules {campaign.rule_version}) each "
        f"campaign province selects {s.percentage} % of its registered cameras by "
        f"{s.deadline:%d %B} {to_be_year(s.deadline.year)} B.E. ({s.deadline.isoformat()}).",
    )


def _outside_note() -> tuple[str, str]:
    return (
        "จังหวัดนี้ไม่อยู่ในรายชื่อจังหวัดที่ต้องคัดเลือกกล้องตามโครงการนี้",
        "This province is not among the provinces this campaign asks to select cameras.",
    )


# -- showing values --------------------------------------------------------------------------


def label_of(table: str, key: str | None) -> tuple[str, str]:
    if key is None:
        return NONE, NONE
    return LABELS[table].get(key, (key, key))


def shown(kind: str, value: Any, labels: str | None = None) -> str:
    """A value as the HTML shows it (Thai first for labels)."""
    if value is None:
        return NONE
    if kind == INT:
        return f"{int(value):,}"
    if kind == PCT:
        return f"{value:.1f}%"
    if kind == BAHT:
        return f"{Decimal(value):,.2f}"
    if kind == DATE:
        return format_be_long(value)
    if kind == TIME:
        return format_be_long_time(value)
    if kind == LABEL and labels:
        th, en = label_of(labels, str(value))
        return th if th == en else f"{th} ({en})"
    return str(value)


def written(kind: str, value: Any) -> str:
    """A value as the CSV writes it: plain numbers (percentages to the tenth the HTML shows),
    ISO dates, UTC instants, symbols as codes."""
    if value is None:
        return ""
    if kind == INT:
        return str(int(value))
    if kind == PCT:
        return f"{value:.1f}"
    if kind == BAHT:
        return f"{Decimal(value):.2f}"
    if kind == DATE:
        return value.isoformat()
    if kind == TIME:
        return value.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return str(value)


def _with_text(kind: str) -> bool:
    """Columns whose CSV carries the shown Thai text beside the code or the ISO date."""
    return kind in (DATE, TIME, LABEL)


# -- HTML -------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("services.reports", "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.globals.update(shown=shown, label_of=label_of)
    return env


@functools.lru_cache(maxsize=1)
def font_faces() -> str:
    """@font-face rules embedding the Sarabun font the dashboard ships (OFL): Thai renders on a
    machine without a Thai font, and the file stays self-contained."""
    rules = []
    vendor = resources.files("services.dashboard").joinpath("static/vendor/sarabun")
    ranges = {
        "thai": "U+0E01-0E5B, U+200C-200D, U+25CC",
        "latin": "U+0000-00FF, U+0131, U+0152-0153, U+02BB-02BC, U+2000-206F, U+20AC, U+2212",
    }
    for script, unicode_range in ranges.items():
        for weight in (400, 700):
            data = vendor.joinpath(f"sarabun-{script}-{weight}-normal.woff2").read_bytes()
            rules.append(
                "@font-face{font-family:Sarabun;font-style:normal;"
                f"font-weight:{weight};font-display:block;"
                f"src:url(data:font/woff2;base64,{base64.b64encode(data).decode('ascii')}) "
                f"format('woff2');unicode-range:{unicode_range}}}"
            )
    return "\n".join(rules)


def render_html(report: Report) -> str:
    template = _environment().get_template(f"{report.kind}.html")
    return template.render(
        r=report,
        fonts=font_faces(),
        day_be=format_be_long(report.day),
        as_of_be=format_be_long_time(report.as_of),
        generated_be=format_be_long_time(report.generated_at),
        whole_day=report.as_of == report.campaign.due(report.day),
    )


# -- CSV -------------------------------------------------------------------------------------


def csv_files(report: Report) -> dict[str, bytes]:
    """file name -> CSV (UTF-8 with BOM, so that Excel reads the Thai): `<slug>-summary.csv`
    with every figure, and one `<slug>-<table>.csv` per table."""
    files = {}
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["section", "figure", "label_th", "label_en", "value", "shown"])
    w.writerow(["report", "date", "วันที่", "Date", report.day.isoformat(),
                format_be_long(report.day)])  # fmt: skip
    w.writerow(["report", "as_of", "ข้อมูล ณ", "As of", written(TIME, report.as_of),
                format_be_long_time(report.as_of)])  # fmt: skip
    if report.province:
        w.writerow(["report", "province_code", report.province.name_th, report.province.name_en,
                    report.province.code, report.province.code])  # fmt: skip
    for section in report.sections:
        for fig in section.figures:
            w.writerow(
                [
                    section.key,
                    fig.key,
                    fig.th,
                    fig.en,
                    written(fig.kind, fig.value),
                    shown(fig.kind, fig.value, fig.labels),
                ]
            )
    files[f"{report.slug}-summary.csv"] = _bom(out.getvalue())
    for table in report.tables():
        out = io.StringIO()
        w = csv.writer(out)
        header = []
        for c in table.columns:
            header.append(c.key)
            if _with_text(c.kind):
                header.append(f"{c.key}_th")
        w.writerow(header)
        for row in table.rows:
            cells = []
            for c in table.columns:
                cells.append(written(c.kind, row.get(c.key)))
                if _with_text(c.kind):
                    cells.append(shown(c.kind, row.get(c.key), c.labels))
            w.writerow(cells)
        files[f"{report.slug}-{table.key}.csv"] = _bom(out.getvalue())
    return files


def _bom(text: str) -> bytes:
    return "\ufeff".encode() + text.encode("utf-8")


# -- files ------------------------------------------------------------------------------------


def write_report(report: Report, output_dir: Path, formats: Sequence[str]) -> list[Path]:
    """Write the report's files into `output_dir` (made if missing); returns their paths."""
    output_dir.mkdir(parents=True, exist_ok=True)
    written_paths = []
    if "html" in formats:
        path = output_dir / f"{report.slug}.html"
        path.write_text(render_html(report), encoding="utf-8")
        written_paths.append(path)
    if "csv" in formats:
        for name, data in csv_files(report).items():
            path = output_dir / name
            path.write_bytes(data)
            written_paths.append(path)
    return written_paths


# -- small helpers ----------------------------------------------------------------------------


def _zone(campaign: Campaign) -> dt.tzinfo:
    from zoneinfo import ZoneInfo

    return ZoneInfo(campaign.timezone)


def _short_day(day: dt.date) -> str:
    return format_be_date(day).rsplit(" ", 1)[0]  # '31 ธ.ค.'


def _round1(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _th_name(province: Province) -> str:
    # Bangkok is not a จังหวัด (province) but a special administrative area: its name stands alone.
    return province.name_th if province.code == "TH-10" else f"จังหวัด{province.name_th}"
