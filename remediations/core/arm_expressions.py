"""A small evaluator for ARM template string expressions, as found in Logic Apps ARM templates.

Microsoft Sentinel playbooks write Key Vault paths such as
`[concat('/secrets/@{encodeURIComponent(''', parameters('SecretName'), ''')}/value')]`: the workflow only
sees the Logic Apps path after deployment. This module evaluates the string functions needed to recover it
offline — `concat`, `format`, `parameters()` / `variables()` (parameters with their `defaultValue`) and
`''` quote escaping — and keeps everything else (unknown functions, parameters without a default) as an
`Unresolved` part, so the literal text around it still shows which operation a path names.

Pure: no I/O; a malformed expression is returned unevaluated, never raised.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

MAX_DEPTH = 16  # variables referring to variables; a template cycle stops here


@dataclass(frozen=True)
class Unresolved:
    """A sub-expression that could not be evaluated offline; `text` is its source, e.g. `parameters('x')`."""

    text: str


Part = str | Unresolved


@dataclass(frozen=True)
class Text:
    """A string with unresolved parts, e.g. ('/secrets/', Unresolved("parameters('x')"), '/value')."""

    parts: tuple[Part, ...]


@dataclass(frozen=True)
class TemplateContext:
    """The template's `parameters` (declarations with optional `defaultValue`) and `variables`."""

    parameters: Mapping[str, Any] = field(default_factory=dict)
    variables: Mapping[str, Any] = field(default_factory=dict)


def is_template_expression(value: str) -> bool:
    """`[...]` is an expression; `[[...]` is a literal string starting with `[`."""
    text = value.strip()
    return text.startswith("[") and text.endswith("]") and not text.startswith("[[")


class _Malformed(Exception):
    pass


_TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<number>-?\d+)|(?P<name>[A-Za-z_]\w*)|(?P<punct>[(),.\[\]]))"
)


def _tokens(source: str) -> list[tuple[str, str, int, int]]:
    tokens = []
    position = 0
    while position < len(source):
        if source[position:].strip() == "":
            break
        match = _TOKEN.match(source, position)
        if not match or match.lastgroup is None:
            raise _Malformed(source)
        tokens.append(
            (match.lastgroup, match.group(match.lastgroup), match.start(match.lastgroup), match.end())
        )
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, source: str, context: TemplateContext, depth: int) -> None:
        self.source = source
        self.tokens = _tokens(source)
        self.index = 0
        self.context = context
        self.depth = depth

    def _peek(self) -> tuple[str, str, int, int] | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def _take(self, value: str | None = None) -> tuple[str, str, int, int]:
        token = self._peek()
        if token is None or (value is not None and token[1] != value):
            raise _Malformed(self.source)
        self.index += 1
        return token

    def parse(self) -> Any:
        value = self._expression()
        if self._peek() is not None:
            raise _Malformed(self.source)
        return value

    def _expression(self) -> Any:
        kind, text, start, _ = self._take()
        if kind == "string":
            value: Any = text[1:-1].replace("''", "'")
        elif kind == "number":
            value = int(text)
        elif kind == "name" and text.lower() in {"true", "false"} and self._peek_value() != "(":
            value = text.lower() == "true"
        elif kind == "name":
            self._take("(")
            args = []
            if self._peek_value() != ")":
                args.append(self._expression())
                while self._peek_value() == ",":
                    self._take(",")
                    args.append(self._expression())
            self._take(")")
            value = self._call(text, args, self.source[start : self.tokens[self.index - 1][3]].strip())
        else:
            raise _Malformed(self.source)
        return self._accessors(value, start)

    def _peek_value(self) -> str | None:
        token = self._peek()
        return token[1] if token else None

    def _accessors(self, value: Any, start: int) -> Any:
        """`.property` and `[index]` after a value."""
        while self._peek_value() in {"[", "."}:
            if self._take()[1] == ".":
                key: Any = self._take()[1]
            else:
                key = self._expression()
                self._take("]")
            end = self.tokens[self.index - 1][3]
            in_object = isinstance(value, Mapping) and isinstance(key, str) and key in value
            in_array = isinstance(value, list) and isinstance(key, int) and 0 <= key < len(value)
            if in_object or in_array:
                value = self._resolve(value[key])
            else:
                value = Unresolved(self.source[start:end].strip())
        return value

    def _resolve(self, value: Any) -> Any:
        return evaluate(value, self.context, self.depth + 1) if isinstance(value, str) else value

    def _call(self, name: str, args: list[Any], source: str) -> Any:
        function = name.lower()
        if function in {"parameters", "variables"} and len(args) == 1 and isinstance(args[0], str):
            if function == "parameters":
                declaration = self.context.parameters.get(args[0])
                if isinstance(declaration, Mapping) and "defaultValue" in declaration:
                    return self._resolve(declaration["defaultValue"])
            elif args[0] in self.context.variables:
                return self._resolve(self.context.variables[args[0]])
            return Unresolved(source)
        if function == "concat" and args and all(_is_text(a) for a in args):
            return _join([part for a in args for part in _parts(a)])
        if function == "format" and args and isinstance(args[0], str):
            return _format(args[0], args[1:], source)
        return Unresolved(source)


def _is_text(value: Any) -> bool:
    return isinstance(value, (str, int, Text, Unresolved)) and not isinstance(value, bool)


def _parts(value: Any) -> tuple[Part, ...]:
    if isinstance(value, Text):
        return value.parts
    if isinstance(value, Unresolved):
        return (value,)
    return (str(value),)


def _join(parts: list[Part]) -> str | Text:
    merged: list[Part] = []
    for part in parts:
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] += part
        elif part != "":
            merged.append(part)
    if all(isinstance(p, str) for p in merged):
        return "".join(p for p in merged if isinstance(p, str))
    return Text(tuple(merged))


_PLACEHOLDER = re.compile(r"\{(\d+)(?::[^}]*)?\}|\{\{|\}\}")


def _format(pattern: str, args: list[Any], source: str) -> str | Text | Unresolved:
    """`format('{0}/{1}', a, b)` (.NET composite format; format specifiers are ignored)."""
    parts: list[Part] = []
    position = 0
    for match in _PLACEHOLDER.finditer(pattern):
        parts.append(pattern[position : match.start()])
        if match.group(1) is None:
            parts.append(match.group(0)[0])
        else:
            index = int(match.group(1))
            if index >= len(args) or not _is_text(args[index]):
                return Unresolved(source)
            parts.extend(_parts(args[index]))
        position = match.end()
    parts.append(pattern[position:])
    return _join(parts)


def evaluate(value: str, context: TemplateContext, depth: int = 0) -> Any:
    """The value of a template string: expressions evaluated, `[[` unescaped, other strings as they are.
    A string result with unresolved parts is a `Text`; a malformed expression is returned unchanged."""
    if not is_template_expression(value):
        return value[1:] if value.strip().startswith("[[") else value
    if depth > MAX_DEPTH:
        return Unresolved(value.strip()[1:-1].strip())
    source = value.strip()[1:-1]
    try:
        return _Parser(source, context, depth).parse()
    except _Malformed:
        return value


def render(value: Any, unresolved: Callable[[Unresolved], str]) -> Any:
    """A string for string-like values (unresolved parts through `unresolved`); other values unchanged."""
    if isinstance(value, Unresolved):
        return unresolved(value)
    if isinstance(value, Text):
        return "".join(p if isinstance(p, str) else unresolved(p) for p in value.parts)
    return value
