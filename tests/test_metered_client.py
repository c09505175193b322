"""The Metered client against the emulator (and a server that never answers), over real HTTP."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator

import pytest

from tests.emulator_fixture import (
    EMULATOR_SECRET,
    RunningEmulator,
    emulator_fixture,  # noqa: F401 - a fixture
    served_emulator_fixture,  # noqa: F401 - a fixture
    silent_server,
)
from tests.servers import free_port
from workers.metered import (
    MeteredClient,
    MeteredError,
    MeteredNotConfigured,
    MeteredNotFound,
    MeteredTimeout,
    MeteredUnavailable,
)
from workers.runtime.settings import Settings


@pytest.fixture
def client(emulator: RunningEmulator) -> Iterator[MeteredClient]:
    """Return a client of the emulator."""
    with MeteredClient(emulator.url, EMULATOR_SECRET, timeout_seconds=5) as metered:
        yield metered


def assert_no_secret(error: BaseException, caplog: pytest.LogCaptureFixture, secret: str) -> None:
    """Check that neither the error (text, repr, traceback) nor any log line shows `secret`."""
    shown = "".join(traceback.format_exception(error)) + str(error) + repr(error)
    assert secret not in shown
    assert error.__context__ is None and error.__cause__ is None
    assert secret not in caplog.text
    assert all(secret not in str(record.args) for record in caplog.records)


def test_room_lifecycle(emulator: RunningEmulator, client: MeteredClient) -> None:
    created = client.create_room({"roomName": "life", "privacy": "private"})
    assert created["roomName"] == "life" and created["privacy"] == "private"
    assert client.get_room("life")["_id"] == created["_id"]
    assert client.update_room("life", {"enableChat": True})["enableChat"] is True
    assert [room["roomName"] for room in client.list_rooms()] == ["life"]
    assert client.delete_room("life")["success"] is True
    assert client.get_room("life")["archived"] is True
    assert {(r["method"], r["path"]) for r in emulator.requests()} == {
        ("POST", "/api/v1/room"),
        ("GET", "/api/v1/room/life"),
        ("PUT", "/api/v1/room/life"),
        ("GET", "/api/v1/rooms"),
        ("DELETE", "/api/v1/room/life"),
    }
    assert all(r["secret_ok"] for r in emulator.requests())


def test_secret_key_is_in_no_log_line_or_repr(
    client: MeteredClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client.create_room({"roomName": "quiet"})
    client.get_room("quiet")
    assert "metered" in caplog.text.lower()  # the calls are logged...
    assert EMULATOR_SECRET not in caplog.text  # ...without the key
    assert EMULATOR_SECRET not in repr(client) and EMULATOR_SECRET not in repr(vars(client))


def test_success_false_becomes_metered_error_with_its_message(client: MeteredClient) -> None:
    client.create_room({"roomName": "dup"})
    with pytest.raises(MeteredError) as caught:
        client.create_room({"roomName": "dup"})
    assert (caught.value.status, caught.value.message) == (400, "Room with name dup already exists")


def test_event_code_error_carries_code_and_message(emulator: RunningEmulator, client: MeteredClient) -> None:
    emulator.state.fail_next("POST", "/api/v1/room", 500, {"eventCode": "E_ROOM", "message": "Room broke"})
    with pytest.raises(MeteredError) as caught:
        client.create_room({})
    error = caught.value
    assert (error.status, error.message, error.event_code) == (500, "Room broke", "E_ROOM")


def test_missing_room_is_not_found(client: MeteredClient) -> None:
    with pytest.raises(MeteredNotFound, match="Room not found"):
        client.get_room("ghost")


def test_wrong_secret_is_an_error_without_the_secret(
    emulator: RunningEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-secret-0b1f3e"
    with MeteredClient(emulator.url, wrong, 5) as metered, pytest.raises(MeteredError) as caught:
        metered.list_rooms()
    assert caught.value.message == "Invalid secretKey"
    assert_no_secret(caught.value, caplog, wrong)


def test_idempotent_calls_retry_a_transient_failure(emulator: RunningEmulator, client: MeteredClient) -> None:
    client.create_room({"roomName": "flaky"})
    emulator.state.fail_next("GET", "/api/v1/room/flaky", 503, {"success": False, "message": "busy"})
    assert client.get_room("flaky")["roomName"] == "flaky"
    assert [r["method"] for r in emulator.requests()] == ["POST", "GET", "GET"]


def test_create_is_never_retried(emulator: RunningEmulator, client: MeteredClient) -> None:
    emulator.state.fail_next("POST", "/api/v1/room", 503, {"success": False, "message": "busy"})
    with pytest.raises(MeteredError, match="busy"):
        client.create_room({})
    assert [r["method"] for r in emulator.requests()] == ["POST"]


def test_timeout_is_typed_and_keeps_the_secret(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with silent_server() as server, MeteredClient(server.url, EMULATOR_SECRET, 0.2) as metered:
        with pytest.raises(MeteredTimeout) as caught:
            metered.create_room({"roomName": "slow"})
        assert len(server.accepted) == 1
        with pytest.raises(MeteredTimeout):
            metered.get_room("slow")
        assert len(server.accepted) == 4  # a GET is retried twice
    assert_no_secret(caught.value, caplog, EMULATOR_SECRET)


def test_unreachable_metered_is_unavailable(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    nowhere = f"http://127.0.0.1:{free_port()}/api/v1"
    with MeteredClient(nowhere, EMULATOR_SECRET, 1) as metered, pytest.raises(MeteredUnavailable) as caught:
        metered.create_room({})
    assert_no_secret(caught.value, caplog, EMULATOR_SECRET)


def test_from_settings_needs_an_address_and_a_key() -> None:
    no_key = Settings(_env_file=None, metered_api_url="http://127.0.0.1:9/api/v1")
    with pytest.raises(MeteredNotConfigured, match="METERED_SECRET_KEY"):
        MeteredClient.from_settings(no_key)
    no_address = Settings(_env_file=None, metered_secret_key="k")
    with pytest.raises(MeteredNotConfigured, match="METERED_APP_NAME"):
        MeteredClient.from_settings(no_address)
    named = Settings(_env_file=None, metered_app_name="acme", metered_secret_key="k")
    with MeteredClient.from_settings(named) as metered:
        assert metered.base_url == "https://acme.metered.live/api/v1"
