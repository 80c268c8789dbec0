"""The documents domain's GraphQL types and the models they are read from."""

from __future__ import annotations

import uuid

from strawberry.types import get_object_definition

from lexintel_api.graphql.cases.types import CaseType
from lexintel_api.graphql.documents.types import ProgressEventType, progress_event_type
from lexintel_core.models import Case
from lexintel_core.progress import ProgressEvent, Stage
from lexintel_core.status import ProcessingStatus


def test_a_progress_event_type_carries_every_field_of_the_event() -> None:
    event = ProgressEvent(
        document_id=uuid.uuid4(),
        case_id=uuid.uuid4(),
        seq=3,
        stage=Stage.DONE,
        status=ProcessingStatus.FAILED,
        percent=100.0,
        message="failed",
        error_code="timeout",
        error_message="took too long",
    )
    converted = progress_event_type(event)
    assert isinstance(converted, ProgressEventType)
    exposed = [field.python_name for field in get_object_definition(converted, strict=True).fields]
    assert exposed == list(ProgressEvent.model_fields)
    assert {name: getattr(converted, name) for name in exposed} == dict(event)
    # A subscription's last result lives until its next event: it must not hold the model.
    assert all(value is not event for value in vars(converted).values())


def test_document_case_resolves_on_the_case_row() -> None:
    """Document.case returns the loaded Case row: every CaseType field without a resolver
    must be one of its attributes."""
    definition = get_object_definition(CaseType, strict=True)
    plain = [field.python_name for field in definition.fields if field.base_resolver is None]
    assert plain
    assert [name for name in plain if not hasattr(Case, name)] == []
