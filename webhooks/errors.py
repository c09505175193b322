"""The one place that turns exceptions into application/problem+json (RFC 9457)."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, json
from pydantic import ValidationError
from sqlalchemy.exc import DataError, DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from workers.deliveries.parsing import field_errors, summary
from workers.wire import ProblemDetails

log = logging.getLogger(__name__)

PROBLEM_TYPE_BASE = "https://rollcall.dev/problems/"


class Problem(Exception):
    """An error answer: raise it from a view and it becomes problem+json."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        errors: list[dict[str, str]] | None = None,
        type_: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail or title
        self.errors = errors
        self.type = type_ or PROBLEM_TYPE_BASE + title.lower().replace(" ", "-")
        self.headers = headers or {}
        self.extra = extra

    def to_response(self) -> Response:
        """Render as an application/problem+json response."""
        fields: dict[str, Any] = {**self.extra}
        if self.errors is not None:
            fields["errors"] = self.errors
        body = ProblemDetails(
            type=self.type, title=self.title, status=self.status, detail=self.detail, **fields
        )
        response = Response(
            json.dumps(body.answer()), status=self.status, mimetype="application/problem+json"
        )
        response.headers.update(self.headers)
        return response


def invalid_fields(errors: list[dict[str, str]]) -> Problem:
    """Return the 422 for a list of {field, message} problems."""
    return Problem(422, "Validation failed", summary(errors), errors=errors)


def validation_problem(error: ValidationError, *, prefix: tuple[str | int, ...] = ()) -> Problem:
    """Turn a pydantic ValidationError into a 422 listing every field and its problem."""
    return invalid_fields(field_errors(error, prefix))


def register_error_handlers(app: Flask) -> None:
    """Answer every error, expected or not, as problem+json without a traceback or secret."""

    @app.errorhandler(Problem)
    def _problem(problem: Problem) -> Response:
        return problem.to_response()

    @app.errorhandler(ValidationError)
    def _validation(error: ValidationError) -> Response:
        return validation_problem(error).to_response()

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException) -> Response:
        status = error.code or 500
        headers = dict(error.get_headers()) if status == 405 else {}
        headers.pop("Content-Type", None)
        return Problem(status, error.name, error.description, headers=headers).to_response()

    @app.errorhandler(DataError)
    def _unusable_value(error: DataError) -> Response:
        # A value the database cannot hold (PostgreSQL refuses NUL in text): the request, not an outage.
        log.info("database refused a value: %s", type(error.orig).__name__)
        return Problem(400, "Bad Request", "A value in the request cannot be used here.").to_response()

    @app.errorhandler(DBAPIError)
    @app.errorhandler(PoolTimeout)  # every connection taken, each waiting on a database that is away
    def _database(error: DBAPIError | PoolTimeout) -> Response:
        # The driver's message can carry the connection URL; log the class only.
        log.error("database error: %s", type(getattr(error, "orig", None) or error).__name__)
        return Problem(
            503,
            "Database unavailable",
            "The database could not be reached; try again.",
            headers={"Retry-After": "5"},
        ).to_response()

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        log.error("unhandled %s on %s", type(error).__name__, _safe_path(), exc_info=False)
        return Problem(500, "Internal Server Error", "Something went wrong on our side.").to_response()


def _safe_path() -> str:
    from flask import request

    # Webhook paths carry a room token: never log it.
    return request.url_rule.rule if request.url_rule else "(no route)"
