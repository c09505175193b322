"""Verify as a job: the seals recomputed off the request path, its progress and findings kept in RQ.

A verify reads every sealed day, which takes minutes on a large log: POST /api/audit/verify queues this
job and answers at once, and the job's meta holds how many seals it has checked, of how many, as it goes.
Its result is the answer verify gives (workers.wire.AuditVerification as JSON), kept for RESULT_TTL.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rq import Queue, get_current_job
from rq.job import Job

from workers import verification, wire
from workers.models.base import utcnow
from workers.runtime import process

# Hours, not RQ's default 3 minutes: every sealed day is read, a day at a time.
VERIFY_TIMEOUT_SECONDS = 6 * 3600
# Long enough for an auditor to come back for the findings; ask again after that.
RESULT_TTL_SECONDS = 7 * 24 * 3600


def enqueue_verification(queue: Queue, kept: Sequence[wire.SealOut]) -> Job:
    """Queue a verify of the log, held also to `kept` (a copy of the seals; may be empty)."""
    copy = [seal.model_dump(mode="json") for seal in kept]
    return queue.enqueue(
        verify_seals,
        copy,
        job_timeout=VERIFY_TIMEOUT_SECONDS,
        result_ttl=RESULT_TTL_SECONDS,
        failure_ttl=RESULT_TTL_SECONDS,
        meta={"checked": 0},
    )


def verify_seals(kept: list[dict[str, Any]]) -> dict[str, Any]:
    """RQ entry point: verify every seal (and `kept`, SealOut's JSON); return the findings as JSON."""
    job = get_current_job()

    def progress(checked: int, seals: int) -> None:
        if job is not None:
            job.meta.update(checked=checked, seals=seals)
            job.save_meta()  # type: ignore[no-untyped-call]

    copy = [wire.SealOut.model_validate(seal) for seal in kept]
    with process.current().Db() as db:
        found = verification.verify(db, utcnow(), copy, progress)
    return wire.verification_out(found).model_dump(mode="json")


def is_verification(job: Job) -> bool:
    """Return whether `job` is a verify queued by enqueue_verification."""
    return job.func_name == f"{verify_seals.__module__}.{verify_seals.__name__}"
