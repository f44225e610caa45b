"""The subcommittee's mail for one project routing: pure text, no network.

The directive (R3) has projects of 10,000,001 baht or more sent to the national subcommittee;
the ministry receives them by e-mail. One mail per (campaign, project, routing version), in
Thai with English beside each line, carrying the project's facts as submitted and the
deadlines as the routing computed them -- in B.E. dates, Bangkok time. Money is formatted
from the Avro decimal; no float is ever involved.

The Message-ID is derived from (campaign, project, routing version) alone, so the same
version always produces the same Message-ID: a copy sent again after a crash (the one window
the journal cannot close, see services/mailer/mailer.py) is recognisable as the same mail by
mail servers, archives and clients.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from cctv.campaign import Campaign
from cctv.dates import BANGKOK, format_be
from cctv.exceptions import InputError
from cctv.ids import derived_event_id
from cctv.provinces import Provinces

SUBCOMMITTEE = "NATIONAL_SUBCOMMITTEE"

SUBCOMMITTEE_TH = (
    "คณะอนุกรรมการกำหนดแผนบริหารจัดการระบบการเชื่อมโยงกล้องโทรทัศน์วงจรปิด (CCTV) "
    "และการใช้ประโยชน์จากข้อมูลระบบกล้องโทรทัศน์วงจรปิด (CCTV) ทั่วประเทศ"
)
# (Thai, English) of each routing body, short forms for lists.
BODIES: dict[str, tuple[str, str]] = {
    "PROVINCIAL_WORKING_GROUP": (
        "คณะทำงานบริหารจัดการข้อมูลฯ ระดับจังหวัด",
        "provincial working group",
    ),
    "NATIONAL_SUBCOMMITTEE": ("คณะอนุกรรมการฯ ระดับชาติ", "national subcommittee"),
    "NATIONAL_CAMERA_REGISTRY": ("ระบบทะเบียนกล้องระดับชาติ", "national camera registry"),
}
KINDS: dict[str | None, tuple[str, str]] = {
    "PROCUREMENT": ("จัดซื้อจัดจ้าง", "procurement"),
    "OTHER": ("อื่น ๆ", "other"),
    None: ("ไม่ระบุ", "not given"),
}


def goes_to_subcommittee(routing: Mapping[str, Any]) -> bool:
    return any(d["body"] == SUBCOMMITTEE for d in routing["destinations"])


def format_baht(amount: Decimal) -> str:
    """'10,000,001.00 บาท': thousands separated, always two decimals (satang), from the
    Decimal itself -- Decimal's own formatting, never a float."""
    if not isinstance(amount, Decimal):
        raise InputError(
            f"budget: expected a decimal amount of baht, got {type(amount).__name__}",
            field="budget",
        )
    return f"{amount.quantize(Decimal('0.01')):,.2f} บาท"


def message_id(*, campaign_id: str, project_id: str, routing_version: int, domain: str) -> str:
    """The one Message-ID of a routing version's mail, whoever sends it, however often."""
    token = derived_event_id("subcommittee-mail", campaign_id, project_id, routing_version)
    return f"<{token}@{domain}>"


@dataclass(frozen=True)
class SubcommitteeMail:
    campaign_id: str
    project_id: str
    routing_version: int
    message_id: str
    sender: str
    recipients: tuple[str, ...]
    subject: str
    body: str
    headers: tuple[tuple[str, str], ...]

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.campaign_id, self.project_id, self.routing_version)

    def email(self, *, now: dt.datetime | None = None) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.recipients)
        msg["Subject"] = self.subject
        msg["Date"] = format_datetime((now or dt.datetime.now(dt.UTC)).astimezone(BANGKOK))
        msg["Message-ID"] = self.message_id
        for name, value in self.headers:
            msg[name] = value
        msg.set_content(self.body, charset="utf-8")
        return msg


def compose(
    routing: Mapping[str, Any],
    *,
    campaign: Campaign,
    provinces: Provinces,
    sender: str,
    previous_message_id: str | None = None,
) -> SubcommitteeMail:
    """The mail of one routing that goes to the national subcommittee.

    Raises InputError (naming the field) for a routing the mailer cannot mail: another
    campaign than the one in force, an unknown province, or no subcommittee destination.
    """
    if routing["campaign_id"] != campaign.campaign_id:
        raise InputError(
            f"campaign_id: {routing['campaign_id']!r} is not the campaign in force "
            f"({campaign.campaign_id!r}), whose mail_to this mailer knows",
            field="campaign_id",
            reason_code="unknown_campaign",
        )
    if not goes_to_subcommittee(routing):
        raise InputError("destinations: no NATIONAL_SUBCOMMITTEE destination", field="destinations")
    province = provinces.get(routing["province_code"])
    version = int(routing.get("routing_version") or 1)
    project_id = routing["project_id"]
    domain = sender.rpartition("@")[2]
    mid = message_id(
        campaign_id=campaign.campaign_id,
        project_id=project_id,
        routing_version=version,
        domain=domain,
    )
    budget = format_baht(routing["budget"])
    destinations = routing["destinations"]
    late = bool(routing.get("late"))
    title = routing.get("title") or ""

    subject = (
        ("[ส่งล่าช้า] " if late else "")
        + f"โครงการ CCTV เสนอคณะอนุกรรมการฯ: {project_id} {title} จังหวัด{province.name_th}"
        + (f" (ฉบับที่ {version})" if version > 1 else "")
        + f" / CCTV project {project_id} for the national subcommittee"
        + (f", version {version}" if version > 1 else "")
    )

    kind_th, kind_en = KINDS.get(routing.get("kind"), (str(routing.get("kind")),) * 2)
    fiscal_year = routing.get("fiscal_year")
    submitted_at = routing.get("submitted_at")
    minimum = format_baht(campaign.routing.national_subcommittee.min_budget)
    lines = [
        f"เรียน {SUBCOMMITTEE_TH}",
        "To: the national subcommittee for the nationwide linking of CCTV and the use of its data",
        "",
        f"จังหวัด{province.name_th}ส่งโครงการด้านกล้องโทรทัศน์วงจรปิด (CCTV) ที่มีงบประมาณ"
        f"ตั้งแต่ {minimum} ขึ้นไป เพื่อให้คณะอนุกรรมการฯ พิจารณา ตาม{campaign.title_th}",
        f"{province.name_en} province sends a CCTV project of {minimum.replace('บาท', 'baht')} "
        f"or more for the national subcommittee's review ({campaign.title_en}).",
        "",
    ]
    if version > 1:
        supersedes = routing.get("supersedes_event_id")
        lines += [
            f"ฉบับนี้เป็นฉบับที่ {version} ซึ่งแทนฉบับก่อนหน้าของโครงการเดียวกัน "
            "(โครงการถูกยื่นใหม่) โปรดใช้ข้อมูลในฉบับนี้",
            f"This is version {version} of the project's routing: it supersedes the earlier "
            "version (the project was resubmitted); please use these facts.",
        ]
        if supersedes:
            lines.append(f"แทน (supersedes) routing event {supersedes}")
        lines.append("")
    lines += [
        f"รหัสโครงการ (project ID): {project_id}",
        f"ชื่อโครงการ (title): {title or 'ไม่ระบุ (not given)'}",
        f"หน่วยงานที่เสนอ (agency): {routing.get('agency') or 'ไม่ระบุ (not given)'}",
        f"จังหวัด (province): {province.name_th} ({province.name_en}, {province.code})",
        f"ประเภทโครงการ (kind): {kind_th} ({kind_en})",
        "ปีงบประมาณ (fiscal year): "
        + (f"พ.ศ. {fiscal_year} (B.E. {fiscal_year})" if fiscal_year else "ไม่ระบุ (not given)"),
        f"งบประมาณ (budget): {budget} ({budget.replace(' บาท', ' baht')})",
        "วันที่ยื่นโครงการ (submitted): "
        + (_when(submitted_at) if submitted_at else "ไม่ระบุ (not given)"),
        "",
        "กำหนดเวลา ตามเวลาประเทศไทย (deadlines, Bangkok time; "
        "a deadline lasts until the end of its day):",
    ]
    for destination in destinations:
        lines.append("- " + _destination_line(destination))
    lines += ["", f"ส่งล่าช้า (late): {'ใช่ (yes)' if late else 'ไม่ (no)'}"]
    for reason in routing.get("late_reasons") or []:
        lines.append("- " + _late_reason(reason, destinations))
    if late and not routing.get("late_reasons"):
        lines.append("- ไม่ได้ระบุเหตุผล (no reason given by the routing)")
    lines += [
        "",
        f"ฉบับของการส่ง (routing version): {version}",
        f"เกณฑ์ที่ใช้ (rules): campaign {routing['campaign_id']}, "
        f"rule version {routing['rule_version']}",
        f"routing event: {routing['event_id']}",
        "",
        "อีเมลนี้ส่งโดยระบบเชื่อมโยงกล้องโทรทัศน์วงจรปิด (CCTV) โดยอัตโนมัติ "
        f"หากได้รับอีเมลที่มี Message-ID {mid} มากกว่าหนึ่งฉบับ ถือเป็นฉบับเดียวกัน",
        "Sent automatically by the CCTV backbone. Copies with the same Message-ID are the same "
        "mail.",
    ]
    headers = [
        ("X-CCTV-Campaign", campaign.campaign_id),
        ("X-CCTV-Project-Id", project_id),
        ("X-CCTV-Routing-Version", str(version)),
        ("X-CCTV-Routing-Event-Id", str(routing["event_id"])),
    ]
    if previous_message_id:
        # Mail clients thread the new version under the one it replaces.
        headers += [("In-Reply-To", previous_message_id), ("References", previous_message_id)]
    return SubcommitteeMail(
        campaign_id=campaign.campaign_id,
        project_id=project_id,
        routing_version=version,
        message_id=mid,
        sender=sender,
        recipients=tuple(campaign.routing.national_subcommittee.mail_to),
        subject=subject,
        body="\n".join(lines) + "\n",
        headers=tuple(headers),
    )


def _when(moment: dt.datetime) -> str:
    """'20 ธ.ค. 2563 09:00 น. (2020-12-20T09:00:00+07:00)'."""
    local = moment.astimezone(BANGKOK)
    return f"{format_be(moment)} ({local.isoformat(timespec='seconds')})"


def _body_names(body: str) -> tuple[str, str]:
    return BODIES.get(body, (body, body))


def _destination_line(destination: Mapping[str, Any]) -> str:
    th, en = _body_names(destination["body"])
    parts = []
    if destination.get("send_by"):
        parts.append(f"ส่งภายใน (send by) {format_be(destination['send_by'])}")
    if destination.get("decide_by"):
        parts.append(f"พิจารณาภายใน (decide by) {format_be(destination['decide_by'])}")
    if not parts:
        parts.append("ไม่มีกำหนดเวลา (no deadline)")
    late = " — ล่าช้า (late)" if destination.get("late") else ""
    return f"{th} ({en}): {', '.join(parts)}{late}"


def _late_reason(reason: str, destinations: Sequence[Mapping[str, Any]]) -> str:
    """A machine-readable reason ('after_send_by:NATIONAL_SUBCOMMITTEE') in words. A reason
    this mailer does not know is shown as it is, never dropped."""
    what, _, body = reason.partition(":")
    if what in ("after_send_by", "after_decide_by") and body:
        th, en = _body_names(body)
        field = what.removeprefix("after_")
        due = next((d.get(field) for d in destinations if d["body"] == body), None)
        when = f" {format_be(due)}" if due else ""
        if field == "send_by":
            return (
                f"ยื่นหลังกำหนดส่งถึง{th}{when} (submitted after the date to send it to the {en}{when})"
            )
        return f"ยื่นหลังกำหนดวันพิจารณาของ{th}{when} (submitted after the {en}'s decision date{when})"
    return f"เหตุผลอื่น (other reason): {reason}"
