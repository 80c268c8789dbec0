"""One rule for every string a client passes to an operation, as a literal in the document
or in `variables`, over any transport: control characters other than tab, line feed and
carriage return, and lone surrogates, are refused with INVALID_INPUT before the operation
runs. PostgreSQL cannot store NUL or a lone surrogate at all, and no name, reference or
search query needs the others."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

from graphql import (
    BREAK,
    ArgumentNode,
    DirectiveNode,
    DocumentNode,
    FieldNode,
    GraphQLError,
    Node,
    ObjectFieldNode,
    StringValueNode,
    VariableDefinitionNode,
    Visitor,
    visit,
)
from strawberry.extensions import SchemaExtension

from lexintel_core.errors import InvalidInput, LexIntelError

REFUSED_CHARACTER = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")
_RULE = (
    "strings may not contain control characters other than tab, line feed and carriage "
    "return, nor lone surrogates"
)
# A refused character can reach a literal only as itself or as a `\u` escape.
_MAYBE_IN_DOCUMENT = re.compile(REFUSED_CHARACTER.pattern + r"|\\u")


def refused_character(text: str) -> str | None:
    """What is wrong with `text` (e.g. "the control character U+0000"), if anything."""
    found = REFUSED_CHARACTER.search(text)
    if found is None:
        return None
    point = ord(found.group())
    if 0xD800 <= point <= 0xDFFF:
        return f"a lone surrogate (U+{point:04X})"
    return f"the control character U+{point:04X}"


def _literal_place(ancestors: list[Node]) -> str:
    """Where a string literal sits: "argument `name` of `createCase`" and the like."""
    fields: list[str] = []
    owner = place = ""
    for node in ancestors:
        if isinstance(node, VariableDefinitionNode):
            place = f"the default value of variable `${node.variable.name.value}`"
        elif isinstance(node, FieldNode):
            owner = f"`{node.name.value}`"
        elif isinstance(node, DirectiveNode):
            owner = f"`@{node.name.value}`"
        elif isinstance(node, ArgumentNode):
            place = f"argument `{node.name.value}` of {owner}"
            fields = []
        elif isinstance(node, ObjectFieldNode):
            fields.append(node.name.value)
    place = place or "a string literal"
    return place + (f" (at `{'.'.join(fields)}`)" if fields else "")


class _FindsRefusedLiteral(Visitor):
    error: GraphQLError | None = None

    def enter_string_value(
        self,
        node: StringValueNode,
        _key: object,
        parent: object,
        _path: object,
        ancestors: list[object],
    ) -> object:
        what = refused_character(node.value)
        if what is None:
            return None
        nodes = [ancestor for ancestor in (*ancestors, parent) if isinstance(ancestor, Node)]
        message = f"{_literal_place(nodes)} contains {what}; {_RULE}"
        self.error = GraphQLError(message, nodes=node, original_error=InvalidInput(message))
        return BREAK


def _refused_literal(document: DocumentNode, source: str | None) -> GraphQLError | None:
    if source is not None and not _MAYBE_IN_DOCUMENT.search(source):
        return None
    finder = _FindsRefusedLiteral()
    visit(document, finder)
    return finder.error


def _strings(name: str, value: object) -> Iterator[tuple[str, str]]:
    """(place, text) for every string inside a variable's value, in order and without
    recursion: a value nested a thousand deep is no reason for a RecursionError."""
    stack = [(f"${name}", value)]
    while stack:
        place, item = stack.pop()
        if isinstance(item, str):
            yield place, item
        elif isinstance(item, Mapping):
            stack.extend(reversed([(f"{place}.{key}", child) for key, child in item.items()]))
        elif isinstance(item, list):
            stack.extend(
                reversed([(f"{place}[{index}]", child) for index, child in enumerate(item)])
            )


def _refused_variable(variables: Mapping[str, object]) -> GraphQLError | None:
    for name, value in variables.items():
        for place, text in _strings(name, value):
            what = refused_character(text)
            if what is not None:
                message = f"variable `{place}` contains {what}; {_RULE}"
                return GraphQLError(message, original_error=InvalidInput(message))
    return None


class StringRule(SchemaExtension):
    """Applies the rule to every operation (query, mutation, subscription; HTTP, SSE and
    WebSocket alike) before it is validated and run."""

    def on_validate(self) -> Iterator[None]:
        execution = self.execution_context
        document = execution.graphql_document
        # This rule's error replaces the document's validation errors (ValidationCache's),
        # not a refusal of the request (introspection without a key, the request rate).
        errors = execution.pre_execution_errors or []
        refused = any(isinstance(error.original_error, LexIntelError) for error in errors)
        if not refused and document is not None:
            error = _refused_literal(document, execution.query) or _refused_variable(
                execution.variables or {}
            )
            if error is not None:
                execution.pre_execution_errors = [error]
        yield
