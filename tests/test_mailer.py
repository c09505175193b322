"""SMTP sending against a real SMTP server on loopback (aiosmtpd): plain, STARTTLS, SMTPS, login, failures."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.servers import free_port
from workers.notifications.senders import (
    PermanentMailError,
    SmtpServer,
    TransientMailError,
    parse_smtp_url,
    send_mail,
)

PASSWORD = "p@ss:w/rd%"  # characters that must survive URL-encoding
PASSWORD_IN_URL = "p%40ss%3Aw%2Frd%25"


@dataclass
class Mailbox:
    """An aiosmtpd handler that keeps what it accepts; `answers` are replies to DATA, used up in order."""

    answers: list[str] = field(default_factory=list)
    received: list[EmailMessage] = field(default_factory=list)
    data_attempts: int = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.data_attempts += 1
        if self.answers:
            return self.answers.pop(0)
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        message["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
        self.received.append(message)
        return "250 OK"


def check_login(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    """Accept only user `mailer` with PASSWORD."""
    valid = isinstance(auth_data, LoginPassword) and auth_data.login == b"mailer"
    return AuthResult(success=valid and auth_data.password == PASSWORD.encode(), handled=False)


@contextmanager
def smtp_server(mailbox: Mailbox, **options: Any) -> Iterator[int]:
    """Run a real SMTP server on 127.0.0.1 in a thread; yield its port."""
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, **options)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Return a self-signed certificate and key for 127.0.0.1."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
def server_tls(certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> ssl.SSLContext:
    """Return a server TLS context, and make the client trust its certificate (as SSL_CERT_FILE does)."""
    cert, key = certificate
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def message(to: str = "organizer@example.com") -> EmailMessage:
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = "rollcall@example.com", to, "Attendance summary"
    mail.set_content("hello")
    return mail


def test_plain_smtp_without_login() -> None:
    mailbox = Mailbox()
    with smtp_server(mailbox) as port:
        send_mail(parse_smtp_url(f"smtp://127.0.0.1:{port}"), message())
    [received] = mailbox.received
    assert received["Subject"] == "Attendance summary"
    assert received["X-Envelope-To"] == "organizer@example.com"


def test_plain_smtp_with_login() -> None:
    mailbox = Mailbox()
    with smtp_server(mailbox, authenticator=check_login, auth_require_tls=False) as port:
        send_mail(parse_smtp_url(f"smtp://mailer:{PASSWORD_IN_URL}@127.0.0.1:{port}"), message())
    assert len(mailbox.received) == 1


def test_starttls_with_login(server_tls: ssl.SSLContext) -> None:
    mailbox = Mailbox()
    options = {"tls_context": server_tls, "require_starttls": True, "authenticator": check_login}
    with smtp_server(mailbox, **options) as port:
        server = parse_smtp_url(f"smtp://mailer:{PASSWORD_IN_URL}@127.0.0.1:{port}?starttls=1")
        assert server.security == "starttls"
        send_mail(server, message())
    assert len(mailbox.received) == 1


def test_smtps_with_login(server_tls: ssl.SSLContext) -> None:
    mailbox = Mailbox()
    options = {"ssl_context": server_tls, "authenticator": check_login, "auth_require_tls": False}
    with smtp_server(mailbox, **options) as port:
        server = parse_smtp_url(f"smtps://mailer:{PASSWORD_IN_URL}@127.0.0.1:{port}")
        assert server.security == "tls"
        send_mail(server, message())
    assert len(mailbox.received) == 1


def test_an_untrusted_certificate_is_a_transient_failure(certificate: tuple[Path, Path]) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    with smtp_server(Mailbox(), ssl_context=context) as port, pytest.raises(TransientMailError) as caught:
        send_mail(parse_smtp_url(f"smtps://127.0.0.1:{port}"), message())
    assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value)


def test_4xx_is_transient_and_5xx_permanent() -> None:
    mailbox = Mailbox(answers=["451 4.3.0 Try again later", "550 5.1.1 No such user"])
    with smtp_server(mailbox) as port:
        server = parse_smtp_url(f"smtp://127.0.0.1:{port}")
        with pytest.raises(TransientMailError, match="451"):
            send_mail(server, message())
        with pytest.raises(PermanentMailError, match=r"550 5\.1\.1 No such user"):
            send_mail(server, message())
    assert mailbox.received == []


def test_a_refused_connection_is_transient() -> None:
    with pytest.raises(TransientMailError, match=r"127\.0\.0\.1"):
        send_mail(parse_smtp_url(f"smtp://127.0.0.1:{free_port()}"), message(), timeout=5)


def test_a_wrong_password_is_permanent_and_never_shown() -> None:
    wrong = "hunter2-wrong"
    with smtp_server(Mailbox(), authenticator=check_login, auth_require_tls=False) as port:
        server = parse_smtp_url(f"smtp://mailer:{wrong}@127.0.0.1:{port}")
        with pytest.raises(PermanentMailError, match="535") as caught:
            send_mail(server, message())
    assert wrong not in str(caught.value)
    assert wrong not in repr(server) and wrong not in str(server)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://mail.example.com", SmtpServer("mail.example.com", 25, "plain", None, None)),
        (
            "smtp://mail.example.com?starttls=true",
            SmtpServer("mail.example.com", 587, "starttls", None, None),
        ),
        ("smtps://mail.example.com", SmtpServer("mail.example.com", 465, "tls", None, None)),
        ("smtp://u@mail.example.com:2525", SmtpServer("mail.example.com", 2525, "plain", "u", None)),
    ],
)
def test_parse_smtp_url(url: str, expected: SmtpServer) -> None:
    assert parse_smtp_url(url) == expected


def test_parse_smtp_url_keeps_the_password_secret() -> None:
    server = parse_smtp_url(f"smtp://mailer:{PASSWORD_IN_URL}@mail.example.com:587?starttls=1")
    assert server.password is not None and server.password.get_secret_value() == PASSWORD
    assert PASSWORD not in repr(server)


@pytest.mark.parametrize("url", ["http://user:s3cret@host", "smtp://user:s3cret@host:port", "smtp://"])
def test_parse_smtp_url_rejects_without_echoing(url: str) -> None:
    with pytest.raises(ValueError, match="SMTP_URL") as caught:
        parse_smtp_url(url)
    assert "s3cret" not in str(caught.value)
