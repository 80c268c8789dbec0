"""The root schema, composed from the per-domain queries, mutations and subscriptions."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from functools import partial

import strawberry
from graphql import BREAK, ASTValidationRule, DocumentNode, FieldNode, GraphQLError, Visitor, visit
from strawberry.extensions import (
    AddValidationRules,
    DisableIntrospection,
    MaxAliasesLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
    ValidationCache,
)
from strawberry.types import ExecutionContext

from lexintel_api.graphql.cases.mutations import CaseMutations
from lexintel_api.graphql.cases.queries import CaseQueries
from lexintel_api.graphql.documents.mutations import DocumentMutations
from lexintel_api.graphql.documents.queries import DocumentQueries
from lexintel_api.graphql.documents.subscriptions import DocumentSubscriptions
from lexintel_api.graphql.errors import ErrorCodes, is_expected
from lexintel_api.graphql.limits import OperationRate
from lexintel_api.graphql.search.queries import SearchQueries
from lexintel_api.graphql.strings import StringRule
from lexintel_api.graphql.system.queries import SystemQueries
from lexintel_core.errors import Unauthenticated
from lexintel_core.settings import Settings

logger = logging.getLogger("lexintel_api.graphql")


@strawberry.type
class Query(CaseQueries, DocumentQueries, SearchQueries, SystemQueries):
    pass


@strawberry.type
class Mutation(CaseMutations, DocumentMutations):
    pass


@strawberry.type
class Subscription(DocumentSubscriptions):
    pass


class _FindsIntrospection(Visitor):
    found = False

    def enter_field(self, node: FieldNode, *_: object) -> object:
        if node.name.value in ("__schema", "__type"):
            self.found = True
            return BREAK
        return None


def _introspects(document: DocumentNode) -> bool:
    """Whether the operation asks for the schema (`__typename` alone does not count)."""
    visitor = _FindsIntrospection()
    visit(document, visitor)
    return visitor.found


class IntrospectionNeedsAKey(SchemaExtension):
    """The schema is described to holders of an API key only (GraphiQL: add the
    Authorization header in its headers pane)."""

    def on_validate(self) -> Iterator[None]:
        execution = self.execution_context
        document = execution.graphql_document
        if document is not None and _introspects(document):
            try:
                execution.context.require_principal()
            except Unauthenticated as exc:
                execution.pre_execution_errors = [GraphQLError(exc.message, original_error=exc)]
        yield


class OperationLimits(AddValidationRules):
    """The token, selection depth and alias limits; the last two as validation rules built
    once per schema.

    Strawberry's `QueryDepthLimiter` and `MaxAliasesLimiter` build a new rule class each
    time they are constructed, that is for every operation, and the operation keeps its
    rules for its whole life: for a live subscription, hours of about 4.5 KiB each. Here
    each operation gets a fresh extension over the same rule classes.

    Depth: at most `levels` nested selections: `{ cases { nodes { id } } }` has 3
    (introspection fields are not counted). Strawberry's limiter counts the top-level field
    as depth 0, so its `max_depth` is one less, and its message is rewritten to say `levels`.
    """

    def __init__(self, rules: list[type[ASTValidationRule]], levels: int, tokens: int) -> None:
        super().__init__(rules)
        self.levels = levels
        self.tokens = tokens

    def on_operation(self) -> Iterator[None]:
        # What Strawberry's MaxTokensLimiter does, here rather than in one more extension
        # (and one more hook) that every live subscription would keep.
        self.execution_context.parse_options["max_tokens"] = self.tokens
        yield from super().on_operation()

    @staticmethod
    def rules(levels: int, aliases: int) -> list[type[ASTValidationRule]]:
        """The rule classes for at most `levels` nested selections and `aliases` aliases."""
        depth = QueryDepthLimiter(max_depth=levels - 1)
        return [*depth.validation_rules, *MaxAliasesLimiter(aliases).validation_rules]

    def on_validate(self) -> Iterator[None]:
        # ValidationCache, before this extension, has set the errors (its list, shared by
        # the operations with this text: replaced, never changed).
        errors = self.execution_context.pre_execution_errors
        if errors:
            self.execution_context.pre_execution_errors = [self._in_levels(e) for e in errors]
        yield

    def _in_levels(self, error: GraphQLError) -> GraphQLError:
        ours = f"exceeds maximum operation depth of {self.levels - 1}"
        if not error.message.endswith(ours):
            return error
        name = error.message.removesuffix(ours).strip()
        return GraphQLError(
            f"{name} is nested deeper than {self.levels} levels",
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            original_error=error.original_error,
            extensions=error.extensions,
        )


class SharedParse(ParserCache):
    """Strawberry's ParserCache, except for a document that does not parse: it is left to
    Strawberry's own parse, which reports the error as the operation's result. Raised from
    this hook, the error would skip the end of every extension's operation (ErrorCodes',
    which gives it its code, included)."""

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        with contextlib.suppress(GraphQLError):  # else parsed again, uncached, by Strawberry
            context.graphql_document = self.cached_parse_document(
                context.query, **context.parse_options
            )
        yield


class LexIntelSchema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # Expected errors are the client's business; log only what we did not raise.
        for error in errors:
            if not is_expected(error):
                logger.error("unexpected error in %s", error.path, exc_info=error.original_error)


def create_schema(settings: Settings) -> strawberry.Schema:
    introspection = IntrospectionNeedsAKey if settings.api_introspection else DisableIntrospection
    levels = settings.api_max_query_depth
    limits = OperationLimits.rules(levels, settings.api_max_aliases)
    return LexIntelSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=[
            # Operations with the same text share one parsed document (graphql-core's AST
            # is not changed by validation or execution), and its validation errors: the
            # rules depend on the schema and the document only. 10,000 subscriptions to the
            # same query hold one AST, not 10,000, and leave no validation garbage (rule
            # visitors are reference cycles, freed only by the cyclic GC). Bounded LRUs
            # (128 texts each); the extensions below still run for every operation.
            SharedParse,
            ValidationCache,
            partial(OperationLimits, limits, levels, settings.api_max_query_tokens),
            introspection,
            OperationRate,
            StringRule,
            ErrorCodes,
        ],
    )
