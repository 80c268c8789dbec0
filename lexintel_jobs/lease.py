"""A run's hold on its document: a row of `document_leases` (owner, fencing token, expiry).

A run takes the lease before it writes anything, its heartbeat renews it, and every write
transaction of the run first `fence`s: renews the lease only if the run's token is still
the current one, and holds the row lock until commit. A lease that was not renewed within
`worker_takeover_seconds` (database time: the workers' clocks do not matter) may be taken
by another run, which bumps the token; the first run's writes are refused from then on.
Nothing lives in a database session: a worker host that dies without closing its
connections holds nothing once its lease expires."""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from lexintel_core.errors import DocumentGone, JobError

# The lease of a document that exists, taken if it is free (never taken, released or
# expired). The document itself is neither locked nor waited for.
_TAKE = text(
    """
    INSERT INTO document_leases AS lease (document_id, token, owner, expires_at)
    SELECT id, 1, :owner, clock_timestamp() + make_interval(secs => :seconds)
    FROM documents WHERE id = :document_id
    ON CONFLICT (document_id) DO UPDATE
    SET token = lease.token + 1, owner = excluded.owner, expires_at = excluded.expires_at
    WHERE lease.expires_at <= clock_timestamp()
    RETURNING lease.token
    """
)
# Seconds until the holder's lease expires; no row: the document is gone.
_REMAINING = text(
    """
    SELECT greatest(extract(epoch FROM lease.expires_at - clock_timestamp()), 0)
    FROM documents LEFT JOIN document_leases AS lease ON lease.document_id = documents.id
    WHERE documents.id = :document_id
    """
)
_RENEW = text(
    """
    UPDATE document_leases SET expires_at = clock_timestamp() + make_interval(secs => :seconds)
    WHERE document_id = :document_id AND token = :token
    RETURNING token
    """
)
# Retires the token too: a renewal of it still in flight finds nothing to extend.
_RELEASE = text(
    """
    UPDATE document_leases SET expires_at = clock_timestamp(), token = token + 1
    WHERE document_id = :document_id AND token = :token
    """
)


class LeaseLost(JobError):
    """Another run took this run's document over (its lease expired): this run must stop
    and write nothing more. Not a failure of the document; never retried."""


@dataclass
class Lease:
    document_id: uuid.UUID
    token: int
    seconds: float  # how long each renewal holds it
    lost: bool = False

    def _keys(self) -> dict[str, object]:
        return {"document_id": self.document_id, "token": self.token}

    async def renew(self, connection: AsyncConnection | AsyncSession) -> bool:
        """Extend the lease; False (and `lost` from then on) when another run holds it."""
        held = await connection.scalar(_RENEW, {**self._keys(), "seconds": self.seconds})
        if held is None:
            self.lost = True
        return held is not None

    async def fence(self, session: AsyncSession) -> None:
        """Inside a write transaction, before its writes: renew the lease and keep its row
        locked until commit, or raise `LeaseLost` so that the transaction writes nothing.
        Lock the document row first, if at all (the order every writer keeps)."""
        if not await self.renew(session):
            raise LeaseLost(
                f"the lease on document {self.document_id} was taken over by another run "
                f"(this run's token {self.token} is no longer current)"
            )

    async def release(self, engine: AsyncEngine) -> None:
        """Free the lease for the next run at once (it would expire by itself anyway)."""
        async with engine.begin() as connection:
            await connection.execute(_RELEASE, self._keys())


def worker_name() -> str:
    """Who holds a lease, for people reading the table."""
    return f"{socket.gethostname()}:{os.getpid()}"[:200]


async def take(engine: AsyncEngine, document_id: uuid.UUID, seconds: float) -> Lease | float:
    """The document's lease for `seconds`, or the seconds until the current holder's lease
    expires (if not renewed). DocumentGone when the document does not exist."""
    values = {"document_id": document_id, "owner": worker_name(), "seconds": seconds}
    try:
        async with engine.begin() as connection:
            token = await connection.scalar(_TAKE, values)
            if token is not None:
                return Lease(document_id, int(token), seconds)
            remaining = await connection.scalar(_REMAINING, {"document_id": document_id})
    except IntegrityError as exc:  # deleted between our read of it and the insert
        raise DocumentGone(f"document {document_id} was deleted") from exc
    if remaining is None:
        raise DocumentGone(f"document {document_id} was deleted")
    return float(remaining)
