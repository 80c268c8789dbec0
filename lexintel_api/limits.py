"""Per-tenant limits, shared by every API process through Redis.

- Requests per API key per second, and failed authentications per client address: fixed
  windows of the `limits` package (`limits.aio`, on the API's own redis-py connection pool).
  Over either, `RateLimited`: HTTP 429 with `Retry-After`, or the GraphQL code RATE_LIMITED.
  While an address is over its failures, all its authentications are refused, good keys
  too: otherwise a 401 against a 200 would still tell guesses apart.
- Live subscriptions per organization and per API key, over every transport: each holds a
  lease, a member of one Redis sorted set per organization and per key scored by when it
  expires. This process renews its leases every third of `api_subscription_lease_seconds`,
  so the leases of a process that died expire instead of counting forever. Over a cap,
  `TooManySubscriptions`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.aio.storage import RedisStorage
from limits.aio.strategies import FixedWindowRateLimiter
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.requests import HTTPConnection

from lexintel_api.auth import Principal
from lexintel_core import keys
from lexintel_core.errors import RateLimited, TooManySubscriptions, Unauthenticated
from lexintel_core.settings import Settings

logger = logging.getLogger(__name__)

# Leases renewed by one ZADD command.
_RENEW_BATCH = 1000


def client_address(connection: HTTPConnection) -> str:
    """The peer's address: the TCP peer, or the client a trusted proxy names in
    X-Forwarded-For (`api_trusted_proxies`, applied by create_app)."""
    return connection.client.host if connection.client else "unknown"


class TenantLimits:
    def __init__(self, redis: Redis, settings: Settings) -> None:
        # The API's own pool (and its retries through a Redis restart); limits types its
        # options narrower than the redis-py client it passes them to.
        storage = RedisStorage(
            "async+redis://",
            implementation="redispy",
            connection_pool=redis.connection_pool,  # type: ignore[arg-type]
            key_prefix=keys.LIMITS_PREFIX,
        )
        self._limiter = FixedWindowRateLimiter(storage)
        self._requests = RateLimitItemPerSecond(settings.api_requests_per_key_per_second)
        self._failures = RateLimitItemPerSecond(
            settings.api_failed_auth_per_address, settings.api_failed_auth_window_seconds
        )
        self._redis = redis
        self._caps = {
            "organization": settings.api_max_subscriptions_per_organization,
            "key": settings.api_max_subscriptions_per_key,
        }
        self._lease_seconds = settings.api_subscription_lease_seconds
        self._leases: dict[str, list[str]] = {}  # lease id -> the sorted sets holding it
        self._renewing: asyncio.Task[None] | None = None
        # Read by /metrics: failed authentications, and refusals by limit.
        self.auth_failures = 0
        self.refused: Counter[str] = Counter()

    async def start(self) -> None:
        self._renewing = asyncio.create_task(self._renew_forever())

    async def aclose(self) -> None:
        if self._renewing is not None:
            self._renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewing

    # -- requests and authentication ---------------------------------------------------------

    async def count_request(self, principal: Principal) -> None:
        """One request (an HTTP request, a WebSocket operation, an SSE stream) of the
        principal's key; `RateLimited` once the key is over its requests per second."""
        key_id = str(principal.api_key_id)
        if not await self._limiter.hit(self._requests, "requests", key_id):
            self.refused["requests"] += 1
            raise RateLimited(
                "too many requests with this API key: slow down",
                retry_after=await self._retry_after(self._requests, "requests", key_id),
            )

    @contextlib.asynccontextmanager
    async def authenticating(self, connection: HTTPConnection) -> AsyncIterator[None]:
        """Around one authentication from `connection`'s address: `RateLimited` at once
        while the address is over its failures; an `Unauthenticated` from the block counts
        as a failure."""
        address = client_address(connection)
        if not await self._limiter.test(self._failures, "auth", address):
            self.refused["auth"] += 1
            raise RateLimited(
                "too many failed authentications from this address: try again later",
                retry_after=await self._retry_after(self._failures, "auth", address),
            )
        try:
            yield
        except Unauthenticated:
            self.auth_failures += 1
            await self._limiter.hit(self._failures, "auth", address)
            raise

    async def _retry_after(self, item: RateLimitItem, *identifiers: str) -> int:
        stats = await self._limiter.get_window_stats(item, *identifiers)
        return max(1, math.ceil(stats.reset_time - time.time()))

    # -- live subscriptions ------------------------------------------------------------------

    def subscription(self, principal: Principal) -> SubscriptionLease:
        """A live subscription for the duration of an `async with` block."""
        return SubscriptionLease(self, principal)

    async def acquire(self, principal: Principal) -> str:
        """A lease for one live subscription; `TooManySubscriptions` when the organization
        or the key already holds its cap. Give it back with `release`."""
        scopes = [("organization", principal.organization_id), ("key", principal.api_key_id)]
        sets = [keys.live_subscriptions_key(scope, scope_id) for scope, scope_id in scopes]
        lease, now = uuid.uuid4().hex, time.time()
        # Add first, then count, in one transaction: two racing for the last slot may both
        # be refused, never both admitted.
        async with self._redis.pipeline(transaction=True) as pipe:
            for name in sets:
                pipe.zremrangebyscore(name, "-inf", now)  # leases nobody renewed
                pipe.zadd(name, {lease: now + self._lease_seconds})
                pipe.zcard(name)
                pipe.expire(name, math.ceil(self._lease_seconds))
            counts = (await pipe.execute())[2::4]
        for (scope, _), count in zip(scopes, counts, strict=True):
            if count > self._caps[scope]:
                await self._remove(lease, sets)
                self.refused["subscriptions"] += 1
                raise TooManySubscriptions(
                    f"this {'API key' if scope == 'key' else scope} already has "
                    f"{self._caps[scope]} live subscriptions: end one first"
                )
        self._leases[lease] = sets
        return lease

    async def release(self, lease: str) -> None:
        sets = self._leases.pop(lease, None)
        if sets is not None:
            with contextlib.suppress(RedisError):  # else it expires by itself
                await self._remove(lease, sets)

    async def _remove(self, lease: str, sets: list[str]) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for name in sets:
                pipe.zrem(name, lease)
            await pipe.execute()

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self._lease_seconds / 3)
            try:
                await self._renew()
            except RedisError as exc:  # the next round tries again
                logger.warning("could not renew live subscription leases: %s", exc)

    async def _renew(self) -> None:
        members: dict[str, list[str]] = {}
        for lease, sets in self._leases.items():
            for name in sets:
                members.setdefault(name, []).append(lease)
        if not members:
            return
        expiry = time.time() + self._lease_seconds
        # One ZADD per set and _RENEW_BATCH leases, each awaited: with 10,000 subscriptions,
        # one command per lease and set in one pipeline held the event loop for 180 ms, one
        # pipeline of these batches for 80 ms; awaited apart, the longest hold is a batch's.
        for name, leases in members.items():
            for start in range(0, len(leases), _RENEW_BATCH):
                batch = leases[start : start + _RENEW_BATCH]
                # xx: a lease released meanwhile is not brought back.
                await self._redis.zadd(name, dict.fromkeys(batch, expiry), xx=True)
            await self._redis.expire(name, math.ceil(self._lease_seconds))


class SubscriptionLease:
    """`async with`: holds a lease of `TenantLimits` for the block. A small object rather
    than an asynccontextmanager (a generator frame), as one lives with every subscription."""

    __slots__ = ("_lease", "_limits", "_principal")

    def __init__(self, limits: TenantLimits, principal: Principal) -> None:
        self._limits = limits
        self._principal = principal
        self._lease: str | None = None

    async def __aenter__(self) -> None:
        self._lease = await self._limits.acquire(self._principal)

    async def __aexit__(self, *_: object) -> None:
        if self._lease is not None:
            await self._limits.release(self._lease)
