"""Limits on uploads while their bytes stream in: the size of each file part, the free
space of the temporary directory the parts are spooled to, and how many uploads one
organization has in flight (counted in Redis, so shared by every API process)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from redis.asyncio import Redis
from redis.exceptions import RedisError

from lexintel_core import keys
from lexintel_core.errors import ErrorCode
from lexintel_core.settings import Settings

# Room for the multipart framing and the operations/map fields around the files.
MULTIPART_OVERHEAD_BYTES = 1024 * 1024
# A slot whose API process died is free again after this long; a live one renews it.
SLOT_TTL_SECONDS = 30.0


def request_cap(settings: Settings) -> int:
    """The largest multipart body: every file a request may carry at the largest size a
    file may have, plus the framing and fields around them."""
    return settings.max_upload_bytes * settings.max_upload_files + MULTIPART_OVERHEAD_BYTES


def free_temp_bytes() -> int:
    """Free space where the multipart parser spools file parts (tempfile's directory:
    $TMPDIR, else /tmp)."""
    return shutil.disk_usage(tempfile.gettempdir()).free


class MultipartRefused(Exception):
    """A multipart body refused while it streams in, with the HTTP status, code and message
    to answer."""

    def __init__(self, status: int, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class FilePartMeter:
    """Reads the raw multipart body alongside the real parser, only to count its parts:
    `feed` raises MultipartRefused as soon as a file part passes `max_upload_bytes`, the
    body holds more than `max_upload_files` file parts, or its other fields (operations,
    map: held in memory) pass MULTIPART_OVERHEAD_BYTES together, before the chunk that
    passed it reaches the parser (and the part's temporary file). Without the last two, a
    body under the request cap could hold a thousand fields and a thousand small files,
    each kept in memory (Starlette spools a file to disk only past 1 MiB). A body this
    parser cannot read is left to the real one, which refuses it with a 400."""

    def __init__(self, content_type: str, settings: Settings) -> None:
        self.max_bytes = settings.max_upload_bytes
        self.max_files = settings.max_upload_files
        self._header = b""
        self._value = b""
        self._disposition = b""
        self._is_file = False
        self._size = 0
        self._files = 0
        self._field_bytes = 0
        self._parser: MultipartParser | None = None
        boundary = parse_options_header(content_type)[1].get(b"boundary")
        if boundary:
            with contextlib.suppress(FormParserError):
                self._parser = MultipartParser(
                    boundary,
                    {
                        "on_part_begin": self._on_part_begin,
                        "on_header_field": self._on_header_field,
                        "on_header_value": self._on_header_value,
                        "on_header_end": self._on_header_end,
                        "on_headers_finished": self._on_headers_finished,
                        "on_part_data": self._on_part_data,
                    },
                )

    def feed(self, chunk: bytes) -> None:
        if self._parser is None or not chunk:
            return
        try:
            self._parser.write(chunk)
        except FormParserError:
            self._parser = None

    def _on_part_begin(self) -> None:
        self._disposition, self._is_file, self._size = b"", False, 0

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _on_header_end(self) -> None:
        if self._header.lower() == b"content-disposition":
            self._disposition = self._value
        self._header, self._value = b"", b""

    def _on_headers_finished(self) -> None:
        # A part with a filename is a file, as Starlette's parser decides.
        self._is_file = b"filename" in parse_options_header(self._disposition)[1]
        if self._is_file:
            self._files += 1
            if self._files > self.max_files:
                message = f"at most {self.max_files} files can be uploaded at once"
                raise MultipartRefused(400, ErrorCode.INVALID_INPUT, message)

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._is_file:
            self._size += end - start
            if self._size > self.max_bytes:
                message = f"file is larger than the limit of {self.max_bytes} bytes"
                raise MultipartRefused(413, ErrorCode.FILE_TOO_LARGE, message)
        else:
            self._field_bytes += end - start
            if self._field_bytes > MULTIPART_OVERHEAD_BYTES:
                message = (
                    f"the fields besides the files (operations, map) are larger than "
                    f"{MULTIPART_OVERHEAD_BYTES} bytes together"
                )
                raise MultipartRefused(413, ErrorCode.FILE_TOO_LARGE, message)


class NoUploadSlot(Exception):
    pass


# KEYS[1]: the organization's sorted set of slots (member: token, score: expiry in ms).
# ARGV: token, limit, ttl in ms. Expired slots (their process died) are dropped first.
_ACQUIRE = """
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ms)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], ms + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""
_RENEW = """
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZADD', KEYS[1], 'XX', ms + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""


class UploadSlots:
    """A counting semaphore per organization in Redis: at most `limit` uploads in flight
    across all API processes. Each slot expires unless its holder renews it, so a process
    that dies holding slots frees them within SLOT_TTL_SECONDS."""

    def __init__(self, redis: Redis, limit: int, ttl_seconds: float = SLOT_TTL_SECONDS) -> None:
        self.redis = redis
        self.limit = limit
        self.ttl_seconds = ttl_seconds
        self._acquire = redis.register_script(_ACQUIRE)
        self._renew = redis.register_script(_RENEW)

    @contextlib.asynccontextmanager
    async def hold(self, organization_id: uuid.UUID) -> AsyncIterator[None]:
        """One slot for the duration of the block; NoUploadSlot when all are taken."""
        key = keys.upload_slots_key(organization_id)
        token = uuid.uuid4().hex
        ttl_ms = int(self.ttl_seconds * 1000)
        if not await self._acquire(keys=[key], args=[token, self.limit, ttl_ms]):
            raise NoUploadSlot
        renewing = asyncio.create_task(self._keep(key, token, ttl_ms))
        try:
            yield
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing
            with contextlib.suppress(RedisError):  # else it expires by itself
                await self.redis.zrem(key, token)

    async def _keep(self, key: str, token: str, ttl_ms: int) -> None:
        while True:
            await asyncio.sleep(self.ttl_seconds / 3)
            with contextlib.suppress(RedisError):
                await self._renew(keys=[key], args=[token, ttl_ms])
