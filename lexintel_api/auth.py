"""API keys (bearer tokens bound to an organization) and short-lived SSE stream tokens."""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from lexintel_core.db import SessionFactory
from lexintel_core.errors import Unauthenticated
from lexintel_core.models import ApiKey, Organization

KEY_PREFIX = "lxk_"


@dataclass(frozen=True)
class Principal:
    """Who is calling: every query, mutation and stream is scoped to `organization_id`."""

    organization_id: uuid.UUID
    api_key_id: uuid.UUID  # the key, or the key that issued the stream token


def hash_secret(secret: str) -> str:
    # Keys are 256 random bits, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(secret.encode()).hexdigest()


async def create_api_key(
    session: AsyncSession, organization: str, *, name: str = "default"
) -> tuple[ApiKey, str]:
    """A new key for the organization named `organization` (created if missing). The secret
    is returned once and stored only as its hash."""
    org = await session.scalar(select(Organization).where(Organization.name == organization))
    if org is None:
        org = Organization(name=organization)
        session.add(org)
        await session.flush()
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        organization_id=org.id, name=name, prefix=secret[:12], secret_hash=hash_secret(secret)
    )
    session.add(key)
    await session.flush()
    return key, secret


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` value."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def authenticate(sessions: SessionFactory, token: str | None) -> Principal:
    """The principal of an API key; `Unauthenticated` for a missing, unknown or revoked one."""
    if not token:
        raise Unauthenticated("an API key is required: send `Authorization: Bearer <key>`")
    async with sessions() as session:
        key = await session.scalar(select(ApiKey).where(ApiKey.secret_hash == hash_secret(token)))
    if key is None or not key.is_active:
        raise Unauthenticated("the API key is unknown or revoked")
    return Principal(organization_id=key.organization_id, api_key_id=key.id)


class StreamTokens:
    """Signed, expiring tokens (itsdangerous) that let an `EventSource` (which cannot send
    headers) open the SSE stream of one document for a few minutes, so no long-lived key
    ends up in a URL. A token names the key that issued it, so revoking the key voids it."""

    def __init__(self, secret: bytes, ttl_seconds: int) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt="lexintel-progress-stream")
        self.ttl_seconds = ttl_seconds

    def issue(self, principal: Principal, document_id: uuid.UUID) -> tuple[str, float]:
        """The token and when it expires (Unix time)."""
        claims = {
            "d": str(document_id),
            "o": str(principal.organization_id),
            "k": str(principal.api_key_id),
        }
        return self._serializer.dumps(claims), time.time() + self.ttl_seconds

    def verify(self, token: str, document_id: uuid.UUID) -> Principal:
        """The principal the token was issued to; `Unauthenticated` when it is forged,
        expired or made for another document. Whether its key is still active is the
        caller's to check."""
        try:
            claims = self._serializer.loads(token, max_age=self.ttl_seconds)
        except SignatureExpired:
            raise Unauthenticated("the stream token has expired; ask for a new one") from None
        except BadSignature:
            raise Unauthenticated("the stream token is invalid") from None
        if not isinstance(claims, dict) or "k" not in claims:
            raise Unauthenticated("the stream token is invalid")
        if claims.get("d") != str(document_id):
            raise Unauthenticated("the stream token was issued for another document")
        return Principal(organization_id=uuid.UUID(claims["o"]), api_key_id=uuid.UUID(claims["k"]))
