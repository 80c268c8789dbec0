"""Document mutations: uploads (GraphQL multipart request spec) and lifecycle changes."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import strawberry
from starlette.datastructures import UploadFile
from strawberry.file_uploads import Upload

from lexintel_api.graphql.context import Context
from lexintel_api.graphql.documents.types import (
    DocumentType,
    ProgressStream,
    UploadDocumentPayload,
)
from lexintel_api.service_layer import OpenStream
from lexintel_core.errors import InvalidInput, LexIntelError

_READ_BYTES = 1024 * 1024


def _opener(file: UploadFile) -> OpenStream:
    """Starlette spools the upload to a temporary file; read it back in 1 MiB pieces."""

    async def stream() -> AsyncIterator[bytes]:
        await file.seek(0)
        while piece := await file.read(_READ_BYTES):
            yield piece

    return stream


def _upload_file(value: object) -> UploadFile:
    if not isinstance(value, UploadFile):
        raise InvalidInput("expected a file part (GraphQL multipart request)")
    return value


@strawberry.type
class UploadResult:
    filename: str
    document: DocumentType | None
    duplicate: bool
    error_code: str | None
    error_message: str | None


async def _upload_each(
    context: Context, case_id: uuid.UUID, files: list[UploadFile]
) -> list[UploadResult]:
    limit = context.services.settings.max_upload_files
    if len(files) > limit:
        raise InvalidInput(f"at most {limit} files can be uploaded at once")
    service = context.documents
    results = []
    for upload_file in files:
        filename = upload_file.filename or ""
        try:
            upload = await service.upload(case_id, filename, _opener(upload_file))
        except LexIntelError as exc:
            results.append(
                UploadResult(
                    filename=filename,
                    document=None,
                    duplicate=False,
                    error_code=exc.code.value,
                    error_message=exc.message,
                )
            )
            continue
        results.append(
            UploadResult(
                filename=filename,
                document=DocumentType.from_model(upload.document),
                duplicate=upload.duplicate,
                error_code=None,
                error_message=None,
            )
        )
    return results


@strawberry.type
class DocumentMutations:
    @strawberry.mutation(
        description="Upload one file into a case. The same bytes twice in one case return "
        "the existing document (duplicate: true)."
    )
    async def upload_document(
        self, info: strawberry.Info[Context, None], case_id: uuid.UUID, file: Upload
    ) -> UploadDocumentPayload:
        upload_file = _upload_file(file)
        try:
            result = await info.context.documents.upload(
                case_id, upload_file.filename or "", _opener(upload_file)
            )
        finally:
            await upload_file.close()
        return UploadDocumentPayload(
            document=DocumentType.from_model(result.document), duplicate=result.duplicate
        )

    @strawberry.mutation(
        description="Upload several files into a case; each file succeeds or fails alone."
    )
    async def upload_documents(
        self, info: strawberry.Info[Context, None], case_id: uuid.UUID, files: list[Upload]
    ) -> list[UploadResult]:
        upload_files = [_upload_file(value) for value in files]
        try:
            return await _upload_each(info.context, case_id, upload_files)
        finally:
            for upload_file in upload_files:
                await upload_file.close()

    @strawberry.mutation(description="Process a finished (or stuck QUEUED) document again.")
    async def reprocess_document(
        self, info: strawberry.Info[Context, None], id: uuid.UUID
    ) -> DocumentType:
        return DocumentType.from_model(await info.context.documents.reprocess(id))

    @strawberry.mutation(description="Stop processing a document; it ends CANCELLED.")
    async def cancel_document(
        self, info: strawberry.Info[Context, None], id: uuid.UUID
    ) -> DocumentType:
        return DocumentType.from_model(await info.context.documents.cancel(id))

    @strawberry.mutation(description="Delete a document, its chunks and its unshared blob.")
    async def delete_document(
        self, info: strawberry.Info[Context, None], id: uuid.UUID
    ) -> uuid.UUID:
        await info.context.documents.delete(id)
        return id

    @strawberry.mutation(
        description="A short-lived URL for following one document with a browser "
        "EventSource (plain SSE), which cannot send an Authorization header."
    )
    async def create_progress_stream(
        self, info: strawberry.Info[Context, None], document_id: uuid.UUID
    ) -> ProgressStream:
        context = info.context
        principal = context.require_principal()
        async with context.services.sessions() as session:
            await context.documents.get(session, document_id)
        token, expires = context.services.stream_tokens.issue(principal, document_id)
        return ProgressStream(
            url=_stream_url(context, document_id, token),
            token=token,
            expires_at=datetime.fromtimestamp(expires, UTC),
        )


def _stream_url(context: Context, document_id: uuid.UUID, token: str) -> str:
    """The stream's absolute http(s) URL, as this request reached the API (also when the
    mutation came over a WebSocket)."""
    url = context.request.url_for("progress_stream", document_id=str(document_id))
    if url.scheme in ("ws", "wss"):
        url = url.replace(scheme="https" if url.scheme == "wss" else "http")
    return str(url.include_query_params(token=token))
