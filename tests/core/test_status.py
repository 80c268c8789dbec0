from __future__ import annotations

import itertools
import uuid

import pytest

from lexintel_core.errors import ErrorCode, IllegalTransition
from lexintel_core.models import Document
from lexintel_core.status import (
    ALLOWED_TRANSITIONS,
    TERMINAL_STATUSES,
    ProcessingStatus,
    can_transition,
    ensure_transition,
)

S = ProcessingStatus
PAIRS = list(itertools.product(S, S))


def test_every_status_has_a_transition_entry() -> None:
    assert set(ALLOWED_TRANSITIONS) == set(S)


def test_the_happy_path_is_allowed() -> None:
    path = [S.QUEUED, S.EXTRACTING, S.CHUNKING, S.EMBEDDING, S.READY, S.QUEUED]
    for current, new in itertools.pairwise(path):
        ensure_transition(current, new)


@pytest.mark.parametrize(
    ("current", "new"),
    [(c, n) for c, n in PAIRS if not can_transition(c, n)],
)
def test_illegal_transitions_raise(current: S, new: S) -> None:
    with pytest.raises(IllegalTransition) as raised:
        ensure_transition(current, new)
    assert raised.value.code == ErrorCode.ILLEGAL_TRANSITION
    assert f"from {current} to {new}" in raised.value.message


@pytest.mark.parametrize("terminal", sorted(TERMINAL_STATUSES))
def test_terminal_statuses_only_go_back_to_queued(terminal: S) -> None:
    assert terminal.is_terminal
    assert ALLOWED_TRANSITIONS[terminal] == {S.QUEUED}


@pytest.mark.parametrize(
    ("current", "new"),
    [(S.QUEUED, S.READY), (S.READY, S.EXTRACTING), (S.FAILED, S.READY), (S.CANCELLED, S.EMBEDDING)],
)
def test_notable_illegal_transitions(current: S, new: S) -> None:
    assert not can_transition(current, new)


def _document(status: S) -> Document:
    return Document(
        case_id=uuid.uuid4(),
        filename="a.pdf",
        size_bytes=1,
        sha256="0" * 64,
        blob_key="0" * 64,
        status=status,
    )


def test_document_transition_stamps_the_stage_and_clears_errors_on_requeue() -> None:
    document = _document(S.QUEUED)
    document.transition_to(S.EXTRACTING)
    assert document.extracting_at is not None
    document.transition_to(S.FAILED)
    assert document.finished_at is not None
    document.error_code = "pdf_corrupt"
    document.error_message = "broken xref"
    document.transition_to(S.QUEUED)
    assert document.status is S.QUEUED
    assert document.error_code is None
    assert document.error_message is None


def test_document_refuses_an_illegal_transition_and_keeps_its_status() -> None:
    document = _document(S.READY)
    with pytest.raises(IllegalTransition):
        document.transition_to(S.EMBEDDING)
    assert document.status is S.READY
