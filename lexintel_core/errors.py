"""The typed error hierarchy. Every error carries a stable machine-readable `code`."""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """Why a request failed: GraphQL `extensions.code` and the CLI's messages."""

    NOT_FOUND = "NOT_FOUND"
    INVALID_INPUT = "INVALID_INPUT"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    DUPLICATE = "DUPLICATE"
    FILE_TOO_LARGE = "FILE_TOO_LARGE"
    UNSUPPORTED_TYPE = "UNSUPPORTED_TYPE"
    ILLEGAL_TRANSITION = "ILLEGAL_TRANSITION"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    CSRF_HEADER_REQUIRED = "CSRF_HEADER_REQUIRED"
    TOO_MANY_SUBSCRIPTIONS = "TOO_MANY_SUBSCRIPTIONS"
    RATE_LIMITED = "RATE_LIMITED"  # too many at once or too fast: retry after Retry-After
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"  # database or Redis unreachable: try again
    INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"


class FailureCode(StrEnum):
    """Why a job stopped: stored on a FAILED document (`Document.errorCode`, progress
    events), lower case as it always was on documents. `UNSUPPORTED_TYPE` here is a file the
    worker found it cannot read; the upload-time refusal is `ErrorCode.UNSUPPORTED_TYPE`."""

    PDF_ENCRYPTED = "pdf_encrypted"
    PDF_CORRUPT = "pdf_corrupt"
    UNSUPPORTED_TYPE = "unsupported_type"
    NO_TEXT = "no_text"
    OCR_UNAVAILABLE = "ocr_unavailable"  # pages need OCR and Tesseract is not installed
    CONVERTER_UNAVAILABLE = "converter_unavailable"  # antiword / wpd2text not installed
    TOO_LARGE = "too_large"
    TIMEOUT = "timeout"
    DOCUMENT_DELETED = "document_deleted"
    RETRIES_EXHAUSTED = "retries_exhausted"
    CANCELLED = "cancelled"
    TRANSIENT = "transient"


class LexIntelError(Exception):
    """Base of every error LexIntel raises on purpose: a message for people and a stable
    `code` (an `ErrorCode` for a refused request, a `FailureCode` for a failed job)."""

    code: ErrorCode | FailureCode
    default_code: ErrorCode | FailureCode = ErrorCode.INVALID_INPUT

    def __init__(self, message: str, *, code: ErrorCode | FailureCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code if code is not None else self.default_code

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}"


# Jobs


class JobError(LexIntelError):
    """An error raised inside a job stage."""

    code: FailureCode
    default_code: FailureCode = FailureCode.UNSUPPORTED_TYPE

    def __init__(self, message: str, *, code: FailureCode | None = None) -> None:
        super().__init__(message, code=code)


class PermanentError(JobError):
    """Retrying cannot help (corrupt or encrypted file, unsupported type...): fail at once."""

    default_code = FailureCode.UNSUPPORTED_TYPE


class RetryableError(JobError):
    """A transient failure (network, database, embedding API): retry with backoff."""

    default_code = FailureCode.TRANSIENT


# API


class RequestError(LexIntelError):
    """A request refused: its code goes to the client (GraphQL `extensions.code`)."""

    code: ErrorCode
    default_code: ErrorCode = ErrorCode.INVALID_INPUT

    def __init__(self, message: str, *, code: ErrorCode | None = None) -> None:
        super().__init__(message, code=code)


class NotFound(RequestError):
    default_code = ErrorCode.NOT_FOUND


class InvalidInput(RequestError):
    default_code = ErrorCode.INVALID_INPUT


class PermissionDenied(RequestError):
    default_code = ErrorCode.PERMISSION_DENIED


class Unauthenticated(RequestError):
    default_code = ErrorCode.UNAUTHENTICATED


class RateLimited(RequestError):
    """Too many requests, or failed authentications, in a window: retry after
    `retry_after` seconds."""

    default_code = ErrorCode.RATE_LIMITED

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TooManySubscriptions(RequestError):
    default_code = ErrorCode.TOO_MANY_SUBSCRIPTIONS


class IllegalTransition(InvalidInput):
    default_code = ErrorCode.ILLEGAL_TRANSITION


class DuplicateDocument(RequestError):
    """The same bytes (SHA-256) are already a document of this case."""

    default_code = ErrorCode.DUPLICATE

    def __init__(self, message: str, *, existing_id: object) -> None:
        super().__init__(message)
        self.existing_id = existing_id


class FileTooLarge(InvalidInput):
    default_code = ErrorCode.FILE_TOO_LARGE


class UnsupportedType(InvalidInput):
    default_code = ErrorCode.UNSUPPORTED_TYPE


class DocumentCancelled(JobError):
    """Raised inside a job when the document's cancel flag is seen."""

    default_code = FailureCode.CANCELLED


class DocumentGone(JobError):
    """The document was deleted while its job was queued or running: end quietly."""

    default_code = FailureCode.DOCUMENT_DELETED


class DocumentSuperseded(DocumentGone):
    """The document was queued again (reprocessed) after this job was: a newer job owns it,
    so this one ends quietly without touching the document."""
