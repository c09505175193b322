"""The flask commands' flags: named after Metered's fields, and offered in their help."""

from __future__ import annotations

from click.testing import CliRunner

from webhooks.cli import emulator_command, flag_name


def test_flag_names_follow_the_fields() -> None:
    assert flag_name("enableRTMPOut") == "--enable-rtmp-out"
    assert flag_name("rtmpOutURL") == "--rtmp-out-url"
    assert flag_name("ejectAfterElapsedTimeInSec") == "--eject-after-elapsed-time-in-sec"


def test_emulator_command_offers_port_and_secret() -> None:
    result = CliRunner().invoke(emulator_command, ["--help"])
    assert result.exit_code == 0
    assert "--port" in result.output and "--secret" in result.output
