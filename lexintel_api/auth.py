"""API keys (bearer tokens bound to an organization) and short-lived SSE stream tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from dataclasses import dataclass

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
    api_key_id: uuid.UUID | None  # None for a stream token


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
    """HMAC-signed tokens that let an `EventSource` (which cannot send headers) open the SSE
    stream of one document for a few minutes, so no long-lived key ends up in a URL."""

    def __init__(self, secret: bytes, ttl_seconds: int) -> None:
        self._secret = secret
        self.ttl_seconds = ttl_seconds

    def issue(self, principal: Principal, document_id: uuid.UUID) -> tuple[str, float]:
        expires = time.time() + self.ttl_seconds
        body = json.dumps(
            {"d": str(document_id), "o": str(principal.organization_id), "e": int(expires)},
            separators=(",", ":"),
        ).encode()
        return f"{_b64(body)}.{_b64(self._sign(body))}", expires

    def verify(self, token: str, document_id: uuid.UUID) -> uuid.UUID:
        """The organization the token was issued to; `Unauthenticated` when it is forged,
        expired or made for another document."""
        try:
            body_part, signature_part = token.split(".", 1)
            body = _unb64(body_part)
            valid = hmac.compare_digest(_unb64(signature_part), self._sign(body))
            claims = json.loads(body) if valid else None
        except ValueError:
            claims = None
        if not isinstance(claims, dict):
            raise Unauthenticated("the stream token is invalid")
        if claims.get("d") != str(document_id):
            raise Unauthenticated("the stream token was issued for another document")
        if not isinstance(claims.get("e"), int) or claims["e"] < time.time():
            raise Unauthenticated("the stream token has expired; ask for a new one")
        return uuid.UUID(claims["o"])

    def _sign(self, body: bytes) -> bytes:
        return hmac.new(self._secret, body, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
