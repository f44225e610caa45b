"""Hand one mail to the SMTP server, and say precisely how it went.

Three outcomes, because each asks something different of the mailer:

* **accepted** -- `send` returns; the server took responsibility for the message (for every
  recipient, or for some: the refused ones are returned with the server's reply).
* **deferred** (`MailDeferred`) -- nothing was accepted and trying again later may work: a 4xx
  reply, a refused or dropped connection, a timeout; also what only an operator can fix
  (authentication, a sender the server refuses, an untrusted certificate, no STARTTLS), which
  `configuration=True` marks. Either way the routing is not the cause: the mailer retries
  with backoff and commits nothing meanwhile.
* **refused** (`MailRefused`) -- the server permanently (5xx) refused every recipient, or the
  message itself: sending it again cannot help, so the routing becomes a dead letter.

The password goes to `SMTP.login` and nowhere else: no log line, no exception text here
contains it (smtplib's debug output, which would, stays off).
"""

from __future__ import annotations

import smtplib
import socket
import ssl
from collections.abc import Sequence
from email.message import EmailMessage

from cctv.exceptions import CctvError, InputError
from cctv.settings import MailerSettings


class MailDeferred(CctvError):
    """The SMTP server did not accept the mail this time; try again later."""

    def __init__(self, message: str, *, configuration: bool = False):
        super().__init__(message)
        self.configuration = configuration


class MailRefused(InputError):
    """The SMTP server permanently refused the mail (5xx); sending it again cannot help."""


def send(
    settings: MailerSettings,
    message: EmailMessage,
    *,
    recipients: Sequence[str],
) -> dict[str, str]:
    """Send `message` from `settings.from_address` to `recipients`; returns the recipients the
    server refused while accepting the mail for the others (empty when all accepted)."""
    where = f"SMTP server {settings.smtp_host}:{settings.smtp_port}"
    context = None
    if settings.security != "none":
        context = ssl.create_default_context(
            cafile=str(settings.ca_file) if settings.ca_file else None
        )
    client: smtplib.SMTP | None = None
    try:
        if settings.security == "tls":
            client = smtplib.SMTP_SSL(
                settings.smtp_host,
                settings.smtp_port,
                timeout=settings.timeout_seconds,
                context=context,
            )
        else:
            client = smtplib.SMTP(
                settings.smtp_host, settings.smtp_port, timeout=settings.timeout_seconds
            )
        client.ehlo()
        if settings.security == "starttls":
            if not client.has_extn("starttls"):
                # Never fall back to plain text: the password and the mail would be exposed.
                raise MailDeferred(
                    f"{where} does not offer STARTTLS (mailer.security is starttls)",
                    configuration=True,
                )
            client.starttls(context=context)
            client.ehlo()
        if settings.username is not None and settings.password is not None:
            client.login(settings.username, settings.password.get_secret_value())
        refused = client.send_message(
            message, from_addr=settings.from_address, to_addrs=list(recipients)
        )
    except smtplib.SMTPRecipientsRefused as exc:
        replies = {addr: _reply(code, text) for addr, (code, text) in exc.recipients.items()}
        if all(code >= 500 for code, _ in exc.recipients.values()):
            raise MailRefused(
                f"{where} refused every recipient: {_listing(replies)}",
                field="mail_to",
                reason_code="mail_recipient_refused",
            ) from None
        raise MailDeferred(f"{where} deferred the recipients: {_listing(replies)}") from None
    except smtplib.SMTPDataError as exc:
        if exc.smtp_code >= 500:
            raise MailRefused(
                f"{where} refused the message: {_reply(exc.smtp_code, exc.smtp_error)}",
                field="message",
                reason_code="mail_rejected",
            ) from None
        raise MailDeferred(
            f"{where} deferred the message: {_reply(exc.smtp_code, exc.smtp_error)}"
        ) from None
    except smtplib.SMTPSenderRefused as exc:
        raise MailDeferred(
            f"{where} refused the sender {settings.from_address!r} (mailer.from_address): "
            f"{_reply(exc.smtp_code, exc.smtp_error)}",
            configuration=exc.smtp_code >= 500,
        ) from None
    except smtplib.SMTPAuthenticationError as exc:
        raise MailDeferred(
            f"{where} refused the login of user {settings.username!r} (mailer.username / "
            f"mailer.password): {_reply(exc.smtp_code, exc.smtp_error)}",
            configuration=True,
        ) from None
    except smtplib.SMTPNotSupportedError as exc:
        raise MailDeferred(f"{where}: {exc}", configuration=True) from None
    except smtplib.SMTPResponseException as exc:
        raise MailDeferred(f"{where}: {_reply(exc.smtp_code, exc.smtp_error)}") from None
    except ssl.SSLCertVerificationError as exc:
        raise MailDeferred(
            f"{where}: its TLS certificate is not trusted ({exc.verify_message}); "
            "set mailer.ca_file to the authority that signed it",
            configuration=True,
        ) from None
    except (smtplib.SMTPException, OSError) as exc:
        # Refused or dropped connections, timeouts, TLS failures, unknown host names.
        kind = "timed out" if isinstance(exc, socket.timeout) else type(exc).__name__
        raise MailDeferred(f"{where}: {kind}: {exc}") from None
    finally:
        if client is not None:
            _quit(client)
    return {addr: _reply(code, text) for addr, (code, text) in refused.items()}


def _quit(client: smtplib.SMTP) -> None:
    # After the server accepted the mail, nothing that goes wrong while saying goodbye may
    # turn into a retry (that would send it twice).
    try:
        client.quit()
    except (smtplib.SMTPException, OSError):
        client.close()


def _reply(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{code} {text}"


def _listing(replies: dict[str, str]) -> str:
    return "; ".join(f"{addr}: {reply}" for addr, reply in sorted(replies.items()))
