"""Start-up of the mailer process: settings -> context -> journal -> mailer loop."""

from __future__ import annotations

import argparse
import logging

from cctv import logs
from cctv.context import Context
from cctv.failpoints import Failpoints
from cctv.settings import Settings
from services.mailer.journal import MailJournal
from services.mailer.mailer import SubcommitteeMailer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cctv mailer", description=__doc__)
    parser.add_argument(
        "--idle-exit",
        type=float,
        default=None,
        metavar="S",
        help="stop after S seconds without routings (for batch runs); default: run until stopped",
    )
    args = parser.parse_args(argv)
    ctx = Context.load(Settings.load())
    logs.configure(ctx.settings.log_level)
    log = logging.getLogger("cctv.mailer")
    cfg = ctx.settings.mailer
    journal = MailJournal.open(cfg.journal_dir)
    try:
        # Never the password: only whether there is one.
        log.info(
            "mailer: routings from %s to %s via SMTP %s:%d (%s%s), journal %s (%d mail(s) "
            "recorded), campaign %s",
            ctx.topics["project_routing"].name,
            ", ".join(ctx.campaign.routing.national_subcommittee.mail_to),
            cfg.smtp_host,
            cfg.smtp_port,
            cfg.security,
            f", user {cfg.username}" if cfg.username else ", no login",
            journal.path,
            len(journal),
            ctx.campaign.campaign_id,
        )
        mailer = SubcommitteeMailer(
            settings=ctx.settings,
            campaign=ctx.campaign,
            provinces=ctx.provinces,
            topics=ctx.topics,
            codec=ctx.codec,
            journal=journal,
            failpoints=Failpoints(ctx.settings.failpoints),
        )
        mailer.install_signal_handlers()
        stats = mailer.run(max_idle_seconds=args.idle_exit)
    finally:
        journal.close()
    log.info("mailer stopped: %s", stats.summary())
    return 0
