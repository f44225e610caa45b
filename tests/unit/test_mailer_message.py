"""Unit tests of the subcommittee's mail (services/mailer/message.py), its journal and settings."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
from decimal import Decimal
from pathlib import Path

import pytest

from cctv.campaign import Campaign
from cctv.exceptions import ConfigError, InputError
from cctv.provinces import Provinces
from cctv.settings import CONFIG_DIR, Settings
from services.mailer.journal import FILE_NAME, JournalEntry, MailJournal
from services.mailer.message import compose, format_baht, goes_to_subcommittee, message_id
from tests.routing_samples import BANGKOK, routing

SENDER = "cctv-backbone@moi.example"


@pytest.fixture(scope="module")
def provinces() -> Provinces:
    return Provinces.load(CONFIG_DIR / "provinces.yaml")


@pytest.fixture(scope="module")
def campaign(provinces: Provinces) -> Campaign:
    return Campaign.load(CONFIG_DIR / "campaigns" / "moi-2563.yaml", provinces=provinces)


# -- money -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        ("10000001.00", "10,000,001.00 บาท"),
        ("10000001", "10,000,001.00 บาท"),
        ("10000000.99", "10,000,000.99 บาท"),
        ("123456789012.34", "123,456,789,012.34 บาท"),
        ("0.5", "0.50 บาท"),
        ("500000.00", "500,000.00 บาท"),
    ],
)
def test_baht_with_satang_from_the_decimal(amount: str, text: str) -> None:
    assert format_baht(Decimal(amount)) == text


def test_a_float_budget_is_refused_not_rounded() -> None:
    with pytest.raises(InputError) as info:
        format_baht(10000001.0)  # type: ignore[arg-type]
    assert info.value.field == "budget"


# -- the mail ------------------------------------------------------------------------------------


def _parse(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[return-value]


def test_mail_carries_the_project_facts_in_thai_with_be_dates(
    campaign: Campaign, provinces: Provinces
) -> None:
    record = routing(campaign, "CM-2565-001", budget="10000001.00")
    mail = compose(record, campaign=campaign, provinces=provinces, sender=SENDER)
    body = mail.body
    assert mail.recipients == tuple(campaign.routing.national_subcommittee.mail_to)
    for expected in (
        "เรียน คณะอนุกรรมการกำหนดแผนบริหารจัดการระบบการเชื่อมโยงกล้องโทรทัศน์วงจรปิด (CCTV)",
        "รหัสโครงการ (project ID): CM-2565-001",
        "ชื่อโครงการ (title): โครงการติดตั้งกล้องโทรทัศน์วงจรปิด (CCTV) ถนนนิมมานเหมินท์",
        "หน่วยงานที่เสนอ (agency): เทศบาลนครเชียงใหม่",
        "จังหวัด (province): เชียงใหม่ (Chiang Mai, TH-50)",
        "ประเภทโครงการ (kind): จัดซื้อจัดจ้าง (procurement)",
        "ปีงบประมาณ (fiscal year): พ.ศ. 2565 (B.E. 2565)",
        "งบประมาณ (budget): 10,000,001.00 บาท (10,000,001.00 baht)",
        # Submitted 20 Dec 2020 09:00 Bangkok time = 20 ธ.ค. 2563.
        "วันที่ยื่นโครงการ (submitted): 20 ธ.ค. 2563 09:00 น. (2020-12-20T09:00:00+07:00)",
        # The deadlines are the last minute of their day, Bangkok time, in B.E.
        "คณะอนุกรรมการฯ ระดับชาติ (national subcommittee): ส่งภายใน (send by) 24 ธ.ค. 2563 "
        "23:59 น., พิจารณาภายใน (decide by) 30 ธ.ค. 2563 23:59 น.",
        "(provincial working group): พิจารณาภายใน (decide by) 30 ธ.ค. 2563 23:59 น.",
        "ส่งล่าช้า (late): ไม่ (no)",
        "ฉบับของการส่ง (routing version): 1",
        "rule version 2563.1",
        "Chiang Mai province sends a CCTV project of 10,000,001.00 baht or more",
    ):
        assert expected in body, expected
    assert "supersedes" not in body
    assert "เชียงใหม่" in mail.subject and "CM-2565-001" in mail.subject

    # Through the wire format and back: Thai survives in subject and body.
    parsed = _parse(bytes(mail.email(now=dt.datetime(2020, 12, 20, 2, 0, tzinfo=dt.UTC))))
    assert parsed["Subject"] == mail.subject
    assert parsed.get_content() == body
    assert parsed["Message-ID"] == mail.message_id
    assert parsed["X-CCTV-Project-Id"] == "CM-2565-001"
    assert parsed["X-CCTV-Routing-Version"] == "1"
    assert parsed["Date"].datetime == dt.datetime(2020, 12, 20, 9, 0, tzinfo=BANGKOK)


def test_late_flag_and_reasons_in_words(campaign: Campaign, provinces: Provinces) -> None:
    # 25 Dec 2563 00:00 Bangkok time: the subcommittee's send-by day (24 Dec) has ended.
    late_at = dt.datetime(2020, 12, 25, 0, 0, tzinfo=BANGKOK)
    record = routing(campaign, "CM-LATE", submitted_at=late_at)
    assert record["late_reasons"] == ["after_send_by:NATIONAL_SUBCOMMITTEE"]
    mail = compose(record, campaign=campaign, provinces=provinces, sender=SENDER)
    assert "ส่งล่าช้า (late): ใช่ (yes)" in mail.body
    assert (
        "- ยื่นหลังกำหนดส่งถึงคณะอนุกรรมการฯ ระดับชาติ 24 ธ.ค. 2563 23:59 น. (submitted after "
        "the date to send it to the national subcommittee 24 ธ.ค. 2563 23:59 น.)"
    ) in mail.body
    assert "— ล่าช้า (late)" in mail.body  # on the subcommittee's deadline line
    assert mail.subject.startswith("[ส่งล่าช้า] ")


def test_an_unknown_late_reason_is_shown_as_it_is(campaign: Campaign, provinces: Provinces) -> None:
    record = routing(campaign, "CM-X") | {"late": True, "late_reasons": ["budget_bureau_closed"]}
    mail = compose(record, campaign=campaign, provinces=provinces, sender=SENDER)
    assert "- เหตุผลอื่น (other reason): budget_bureau_closed" in mail.body


def test_a_resubmission_says_it_supersedes_and_threads_under_the_earlier_mail(
    campaign: Campaign, provinces: Provinces
) -> None:
    first = routing(campaign, "CM-2")
    second = routing(
        campaign, "CM-2", version=2, supersedes=first["event_id"], budget="12500000.50"
    )
    mail1 = compose(first, campaign=campaign, provinces=provinces, sender=SENDER)
    mail2 = compose(
        second,
        campaign=campaign,
        provinces=provinces,
        sender=SENDER,
        previous_message_id=mail1.message_id,
    )
    assert "ฉบับนี้เป็นฉบับที่ 2 ซึ่งแทนฉบับก่อนหน้า" in mail2.body
    assert "it supersedes the earlier version" in mail2.body
    assert f"แทน (supersedes) routing event {first['event_id']}" in mail2.body
    assert "12,500,000.50 บาท" in mail2.body
    assert "(ฉบับที่ 2)" in mail2.subject and "version 2" in mail2.subject
    parsed = _parse(bytes(mail2.email()))
    assert parsed["In-Reply-To"] == mail1.message_id == parsed["References"]
    assert mail1.message_id != mail2.message_id


def test_message_id_depends_only_on_campaign_project_and_version(
    campaign: Campaign, provinces: Provinces
) -> None:
    a = compose(routing(campaign, "CM-3"), campaign=campaign, provinces=provinces, sender=SENDER)
    # The same version routed again (another event id, a replay): the same Message-ID.
    b = compose(routing(campaign, "CM-3"), campaign=campaign, provinces=provinces, sender=SENDER)
    assert a.message_id == b.message_id
    assert a.message_id == message_id(
        campaign_id=campaign.campaign_id,
        project_id="CM-3",
        routing_version=1,
        domain="moi.example",
    )
    assert a.message_id.startswith("<") and a.message_id.endswith("@moi.example>")


def test_routings_that_do_not_go_to_the_subcommittee(
    campaign: Campaign, provinces: Provinces
) -> None:
    small = routing(campaign, "CM-4", budget="10000000.99")
    assert [d["body"] for d in small["destinations"]] == ["PROVINCIAL_WORKING_GROUP"]
    assert not goes_to_subcommittee(small)
    with pytest.raises(InputError) as info:
        compose(small, campaign=campaign, provinces=provinces, sender=SENDER)
    assert info.value.field == "destinations"


def test_another_campaigns_routing_names_the_field(
    campaign: Campaign, provinces: Provinces
) -> None:
    record = routing(campaign, "CM-5", campaign_id="moi-cctv-2564")
    with pytest.raises(InputError) as info:
        compose(record, campaign=campaign, provinces=provinces, sender=SENDER)
    assert (info.value.field, info.value.reason_code) == ("campaign_id", "unknown_campaign")


def test_unknown_province_is_an_input_error(campaign: Campaign, provinces: Provinces) -> None:
    record = routing(campaign, "CM-6", province_code="TH-99")
    with pytest.raises(InputError) as info:
        compose(record, campaign=campaign, provinces=provinces, sender=SENDER)
    assert info.value.reason_code == "unknown_province"


# -- the journal ---------------------------------------------------------------------------------


def _entry(project: str, version: int = 1) -> JournalEntry:
    return JournalEntry(
        campaign_id="moi-cctv-2563",
        project_id=project,
        routing_version=version,
        message_id=f"<{project}.{version}@moi.example>",
        recipients=["a@moi.example"],
        refused={},
        sent_at="2020-12-20T02:00:00.000+00:00",
        topic="t",
        partition=0,
        offset=version,
    )


def test_journal_survives_a_reopen(tmp_path: Path) -> None:
    journal = MailJournal.open(tmp_path)
    journal.record(_entry("P-1"))
    journal.record(_entry("P-1", 2))
    journal.close()
    again = MailJournal.open(tmp_path)
    try:
        assert len(again) == 2
        assert again.get(("moi-cctv-2563", "P-1", 2)).message_id == "<P-1.2@moi.example>"
        assert again.get(("moi-cctv-2563", "P-1", 3)) is None
    finally:
        again.close()


def test_a_torn_last_line_is_cut_off_and_the_journal_stays_usable(tmp_path: Path) -> None:
    journal = MailJournal.open(tmp_path)
    journal.record(_entry("P-1"))
    journal.close()
    with (tmp_path / FILE_NAME).open("ab") as f:
        f.write(b'{"campaign_id": "moi-cctv-2563", "project_id": "P-2", "rout')  # crash mid-write
    journal = MailJournal.open(tmp_path)
    journal.record(_entry("P-3"))
    journal.close()
    journal = MailJournal.open(tmp_path)
    try:
        assert len(journal) == 2
        assert journal.get(("moi-cctv-2563", "P-2", 1)) is None
        assert journal.get(("moi-cctv-2563", "P-3", 1)) is not None
    finally:
        journal.close()


def test_a_corrupt_line_inside_the_journal_stops_the_mailer(tmp_path: Path) -> None:
    (tmp_path / FILE_NAME).write_bytes(b"not json\n")
    with pytest.raises(ConfigError, match="line 1"):
        MailJournal.open(tmp_path)


def test_one_mailer_per_journal(tmp_path: Path) -> None:
    first = MailJournal.open(tmp_path)
    try:
        with pytest.raises(ConfigError, match="in use by another mailer"):
            MailJournal.open(tmp_path)
    finally:
        first.close()
    MailJournal.open(tmp_path).close()  # free again once the first is closed


# -- settings ------------------------------------------------------------------------------------

PASSWORD = "s3cret-smtp-pw-7781"


def test_mailer_settings_from_the_environment_never_show_the_password() -> None:
    settings = Settings.load(
        environ={
            "CCTV_DATA_DIR": "/var/lib/cctv",
            "CCTV_MAILER__SMTP_HOST": "smtp.moi.example",
            "CCTV_MAILER__SMTP_PORT": "465",
            "CCTV_MAILER__SECURITY": "tls",
            "CCTV_MAILER__USERNAME": "cctv",
            "CCTV_MAILER__PASSWORD": PASSWORD,
        }
    )
    mailer = settings.mailer
    assert (mailer.smtp_host, mailer.smtp_port, mailer.security) == ("smtp.moi.example", 465, "tls")
    assert mailer.password.get_secret_value() == PASSWORD
    assert mailer.journal_dir == Path("/var/lib/cctv/mailer")
    for text in (settings.render(), repr(settings), str(settings), repr(mailer), str(mailer)):
        assert PASSWORD not in text
    assert "password: '**********'" in settings.render()


def test_empty_credentials_mean_no_login() -> None:
    mailer = Settings.load(
        environ={"CCTV_MAILER__USERNAME": "", "CCTV_MAILER__PASSWORD": ""}
    ).mailer
    assert mailer.username is None and mailer.password is None


LOGIN = {"CCTV_MAILER__USERNAME": "cctv", "CCTV_MAILER__PASSWORD": PASSWORD}


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (LOGIN | {"CCTV_MAILER__SECURITY": "none"}, "unencrypted"),
        ({"CCTV_MAILER__PASSWORD": PASSWORD}, "give both, or neither"),
        (LOGIN | {"CCTV_MAILER__SECURITY": "ssl"}, "mailer.security"),
        (LOGIN | {"CCTV_MAILER__FROM_ADDRESS": "cctv backbone"}, "not an e-mail address"),
        (LOGIN | {"CCTV_MAILER__SMTP_PORT": "0"}, "mailer.smtp_port"),
        (LOGIN | {"CCTV_MAILER__SMTP_HOTS": "x"}, "mailer.smtp_hots: unknown key"),
    ],
)
def test_bad_mailer_settings_name_the_field_and_hide_the_password(
    environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.load(environ=environ)
    assert message in str(info.value)
    assert PASSWORD not in str(info.value)


def test_a_password_that_is_not_text_is_neither_refused_nor_echoed(tmp_path: Path) -> None:
    path = tmp_path / "settings.yaml"
    path.write_text("mailer: {username: cctv, password: 12345678}\n", encoding="utf-8")
    settings = Settings.load(settings_file=path, environ={})
    assert settings.mailer.password.get_secret_value() == "12345678"
    assert "12345678" not in settings.render()
