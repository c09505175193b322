"""SMTP_URL: the server, port, security and login it names, and its password kept secret."""

from __future__ import annotations

import pytest

from workers.notifications.senders import SmtpServer, parse_smtp_url

PASSWORD = "p@ss:w/rd%"  # characters that must survive URL-encoding
PASSWORD_IN_URL = "p%40ss%3Aw%2Frd%25"


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
