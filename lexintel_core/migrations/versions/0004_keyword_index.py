"""BM25 keyword index: chunks' search_text, postings and term statistics kept by triggers

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05

- `document_chunks.search_text`: the chunk's text without boilerplate lines (filing stamps,
  running headers, pleading line numbers; NULL: the whole text, for chunks written before);
  `search_vector` is now built from it. `document_chunks.page_breaks`: where pages begin in
  the chunk's text, to cite the page of a passage.
- `keyword_postings`: one row per (chunk, lexeme) of every READY document: the lexeme's
  count in the chunk (tf) and the chunk's length in lexeme positions.
- `keyword_terms` (chunks per lexeme: document frequency) and `keyword_statistics` (chunks
  and total length) per organization, for BM25's inverse document frequency and average
  length.

All three are kept by triggers in the transaction that changes a document or its chunks, so
they are exact at every commit: postings exist for the chunks of READY documents, written
when a document becomes READY (or a chunk is added to a READY one) and removed when it leaves
READY (reprocess) or its chunks are deleted (with the document, case or organization). The
statistics triggers lock the organization's `keyword_statistics` row before any of its
`keyword_terms` rows, so concurrent writers of one organization queue on that row instead of
deadlocking on terms.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FUNCTIONS = """
CREATE FUNCTION keyword_terms_of(c document_chunks)
RETURNS TABLE (lexeme text, tf integer, length integer)
LANGUAGE sql IMMUTABLE AS $$
    SELECT u.lexeme, coalesce(array_length(u.positions, 1), 1),
           sum(coalesce(array_length(u.positions, 1), 1)) OVER ()
    FROM unnest(c.search_vector) u
$$;


CREATE FUNCTION keyword_chunks_added() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO keyword_postings
        (organization_id, lexeme, case_id, document_id, chunk_id, tf, length)
    SELECT k.organization_id, x.lexeme, c.case_id, c.document_id, c.id, x.tf, x.length
    FROM added c
    JOIN documents d ON d.id = c.document_id AND d.status = 'READY'
    JOIN cases k ON k.id = c.case_id
    CROSS JOIN LATERAL keyword_terms_of(c) x;
    RETURN NULL;
END
$$;


CREATE FUNCTION keyword_chunks_removed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM keyword_postings p
    USING removed r
    WHERE p.document_id = r.document_id AND p.chunk_id = r.id;
    RETURN NULL;
END
$$;


CREATE FUNCTION keyword_documents_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status = 'READY' AND NEW.status <> 'READY' THEN
        DELETE FROM keyword_postings WHERE document_id = OLD.id;
    ELSIF NEW.status = 'READY' AND OLD.status <> 'READY' THEN
        INSERT INTO keyword_postings
            (organization_id, lexeme, case_id, document_id, chunk_id, tf, length)
        SELECT k.organization_id, x.lexeme, c.case_id, c.document_id, c.id, x.tf, x.length
        FROM document_chunks c
        JOIN cases k ON k.id = c.case_id
        CROSS JOIN LATERAL keyword_terms_of(c) x
        WHERE c.document_id = NEW.id;
    END IF;
    RETURN NULL;
END
$$;


CREATE FUNCTION keyword_postings_added() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO keyword_statistics AS s (organization_id, chunks, length)
    SELECT organization_id, count(*), sum(length)
    FROM (SELECT DISTINCT organization_id, chunk_id, length FROM added) per_chunk
    GROUP BY organization_id
    ORDER BY organization_id
    ON CONFLICT (organization_id) DO UPDATE
        SET chunks = s.chunks + excluded.chunks, length = s.length + excluded.length;
    INSERT INTO keyword_terms AS t (organization_id, lexeme, chunks)
    SELECT organization_id, lexeme, count(*)
    FROM added
    GROUP BY organization_id, lexeme
    ORDER BY organization_id, lexeme
    ON CONFLICT (organization_id, lexeme) DO UPDATE SET chunks = t.chunks + excluded.chunks;
    RETURN NULL;
END
$$;


CREATE FUNCTION keyword_postings_removed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM keyword_statistics
    WHERE organization_id IN (SELECT organization_id FROM removed)
    ORDER BY organization_id
    FOR UPDATE;
    UPDATE keyword_statistics s
    SET chunks = s.chunks - r.chunks, length = s.length - r.length
    FROM (
        SELECT organization_id, count(*) AS chunks, sum(length) AS length
        FROM (SELECT DISTINCT organization_id, chunk_id, length FROM removed) per_chunk
        GROUP BY organization_id
    ) r
    WHERE s.organization_id = r.organization_id;
    UPDATE keyword_terms t
    SET chunks = t.chunks - r.chunks
    FROM (
        SELECT organization_id, lexeme, count(*) AS chunks
        FROM removed
        GROUP BY organization_id, lexeme
    ) r
    WHERE t.organization_id = r.organization_id AND t.lexeme = r.lexeme;
    DELETE FROM keyword_terms t
    USING (SELECT DISTINCT organization_id, lexeme FROM removed) r
    WHERE t.organization_id = r.organization_id AND t.lexeme = r.lexeme AND t.chunks <= 0;
    DELETE FROM keyword_statistics
    WHERE organization_id IN (SELECT organization_id FROM removed) AND chunks <= 0;
    RETURN NULL;
END
$$;


CREATE TRIGGER keyword_documents_changed
AFTER UPDATE OF status ON documents
FOR EACH ROW EXECUTE FUNCTION keyword_documents_changed();


CREATE TRIGGER keyword_chunks_added
AFTER INSERT ON document_chunks REFERENCING NEW TABLE AS added
FOR EACH STATEMENT EXECUTE FUNCTION keyword_chunks_added();


CREATE TRIGGER keyword_chunks_removed
AFTER DELETE ON document_chunks REFERENCING OLD TABLE AS removed
FOR EACH STATEMENT EXECUTE FUNCTION keyword_chunks_removed();


CREATE TRIGGER keyword_postings_added
AFTER INSERT ON keyword_postings REFERENCING NEW TABLE AS added
FOR EACH STATEMENT EXECUTE FUNCTION keyword_postings_added();


CREATE TRIGGER keyword_postings_removed
AFTER DELETE ON keyword_postings REFERENCING OLD TABLE AS removed
FOR EACH STATEMENT EXECUTE FUNCTION keyword_postings_removed();
"""


def _uuid(name: str) -> sa.Column[Any]:
    return sa.Column(name, sa.UUID(), nullable=False)


def _search_vector(source: str) -> None:
    """search_vector (and its GIN index) generated anew from the SQL expression `source`."""
    op.drop_index("ix_document_chunks_search_vector", table_name="document_chunks")
    op.drop_column("document_chunks", "search_vector")
    op.add_column(
        "document_chunks",
        sa.Column(
            "search_vector",
            postgresql.TSVECTOR(),
            sa.Computed(f"to_tsvector('english', {source})", persisted=True),
            nullable=False,
        ),
    )
    op.create_index(
        "ix_document_chunks_search_vector",
        "document_chunks",
        ["search_vector"],
        postgresql_using="gin",
    )


def upgrade(**kwargs: Any) -> None:
    # NULL for chunks written before boilerplate detection: their whole text is indexed.
    op.add_column("document_chunks", sa.Column("search_text", sa.Text(), nullable=True))
    op.add_column(
        "document_chunks",
        sa.Column(
            "page_breaks", postgresql.ARRAY(sa.Integer()), nullable=False, server_default="{}"
        ),
    )
    _search_vector("coalesce(search_text, text)")

    op.create_table(
        "keyword_postings",
        _uuid("organization_id"),
        sa.Column("lexeme", sa.Text(collation="C"), nullable=False),
        _uuid("case_id"),
        _uuid("document_id"),
        _uuid("chunk_id"),
        sa.Column("tf", sa.Integer(), nullable=False),
        sa.Column("length", sa.Integer(), nullable=False),
    )
    # Everything a BM25 ranking reads is in the index: an index-only scan per query lexeme.
    op.create_index(
        "ix_keyword_postings_lexeme",
        "keyword_postings",
        ["organization_id", "lexeme", "case_id"],
        postgresql_include=["document_id", "chunk_id", "tf", "length"],
    )
    op.create_index("ix_keyword_postings_document_id", "keyword_postings", ["document_id"])
    op.create_table(
        "keyword_terms",
        _uuid("organization_id"),
        sa.Column("lexeme", sa.Text(collation="C"), nullable=False),
        sa.Column("chunks", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("organization_id", "lexeme", name="pk_keyword_terms"),
    )
    op.create_table(
        "keyword_statistics",
        sa.Column("organization_id", sa.UUID(), primary_key=True),
        sa.Column("chunks", sa.BigInteger(), nullable=False),
        sa.Column("length", sa.BigInteger(), nullable=False),
    )
    for statement in _FUNCTIONS.split("\n\n\n"):
        op.execute(statement)
    # Index what is already READY (the triggers count it into the statistics).
    op.execute(
        "INSERT INTO keyword_postings"
        " (organization_id, lexeme, case_id, document_id, chunk_id, tf, length)"
        " SELECT k.organization_id, x.lexeme, c.case_id, c.document_id, c.id, x.tf, x.length"
        " FROM document_chunks c"
        " JOIN documents d ON d.id = c.document_id AND d.status = 'READY'"
        " JOIN cases k ON k.id = c.case_id"
        " CROSS JOIN LATERAL keyword_terms_of(c) x"
    )


def downgrade(**kwargs: Any) -> None:
    op.execute("DROP TRIGGER keyword_documents_changed ON documents")
    op.execute("DROP TRIGGER keyword_chunks_added ON document_chunks")
    op.execute("DROP TRIGGER keyword_chunks_removed ON document_chunks")
    op.drop_table("keyword_postings")
    op.drop_table("keyword_terms")
    op.drop_table("keyword_statistics")
    for function in (
        "keyword_documents_changed()",
        "keyword_chunks_added()",
        "keyword_chunks_removed()",
        "keyword_postings_added()",
        "keyword_postings_removed()",
        "keyword_terms_of(document_chunks)",
    ):
        op.execute(f"DROP FUNCTION {function}")
    _search_vector("text")
    op.drop_column("document_chunks", "search_text")
    op.drop_column("document_chunks", "page_breaks")
