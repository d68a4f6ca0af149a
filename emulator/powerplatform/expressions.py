"""A small evaluator for the workflow definition language, enough for the shapes Key Vault flows use:

    @body('List_secrets')?['value']        @items('Apply_to_each')?['name']     @item()?['name']
    @outputs('Get_secret')?['body/value']  @triggerBody()?['text']              @parameters('x')
    @{body('Get_secret')?['value']}  (string interpolation)   concat, encodeURIComponent, string,
    equals, not, and, or, toLower, toUpper, length, coalesce, first, last

Anything else raises `ExpressionError`, which the runner reports as the product does (`InvalidTemplate`).
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class ExpressionError(ValueError):
    pass


@dataclass
class Context:
    """What expressions can see: action outputs so far, loop items, trigger outputs, parameters."""

    outputs: dict[str, Any] = field(default_factory=dict)
    loops: list[tuple[str, Any]] = field(default_factory=list)  # innermost last
    trigger_outputs: Any = None
    parameters: dict[str, Any] = field(default_factory=dict)
    referenced: set[str] = field(default_factory=set)  # actions whose outputs an evaluation read

    def child(self, loop: str, item: Any) -> Context:
        return Context(
            outputs=dict(self.outputs),
            loops=[*self.loops, (loop, item)],
            trigger_outputs=self.trigger_outputs,
            parameters=self.parameters,
            referenced=self.referenced,
        )


_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>-?\d+(?:\.\d+)?)|(?P<name>[A-Za-z_$][\w$]*)"
    r"|(?P<punct>\?\[|[()\[\],.]))"
)


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None:
            raise ExpressionError(f"unexpected character at {pos} in '{text}'")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str, ctx: Context) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.pos = 0
        self.ctx = ctx

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None or (value is not None and token[1] != value):
            raise ExpressionError(f"expected {value or 'a token'} in '{self.text}'")
        self.pos += 1
        return token

    def parse(self) -> Any:
        value = self.expression()
        if self.peek() is not None:
            raise ExpressionError(f"unexpected '{self.peek()[1]}' in '{self.text}'")  # type: ignore[index]
        return value

    def expression(self) -> Any:
        kind, text = self.take()
        if kind == "str":
            value: Any = text[1:-1].replace("''", "'")
        elif kind == "num":
            value = float(text) if "." in text else int(text)
        elif kind == "name" and text in ("true", "false", "null"):
            value = {"true": True, "false": False, "null": None}[text]
        elif kind == "name":
            self.take("(")
            args: list[Any] = []
            if self.peek() and self.peek()[1] != ")":  # type: ignore[index]
                args.append(self.expression())
                while self.peek() and self.peek()[1] == ",":  # type: ignore[index]
                    self.take(",")
                    args.append(self.expression())
            self.take(")")
            value = self.call(text, args)
        else:
            raise ExpressionError(f"unexpected '{text}' in '{self.text}'")
        while self.peek() and self.peek()[1] in ("[", "?[", "."):  # type: ignore[index]
            _, accessor = self.take()
            optional = accessor == "?["
            if accessor == ".":
                key: Any = self.take()[1]
            else:
                key = self.expression()
                self.take("]")
            value = _index(value, key, optional)
        return value

    def call(self, name: str, args: list[Any]) -> Any:
        function = _FUNCTIONS.get(name.lower())
        if function is None:
            raise ExpressionError(f"The template function '{name}' is not defined or not valid.")
        return function(self.ctx, *args)


def _index(value: Any, key: Any, optional: bool) -> Any:
    if isinstance(key, str) and "/" in key and isinstance(value, dict):
        for part in key.split("/"):  # Power Automate's ?['body/value'] path form
            value = _index(value, part, optional)
        return value
    if value is None:
        if optional:
            return None
        raise ExpressionError(f"cannot select '{key}' of null")
    if isinstance(value, dict):
        if key in value:
            return value[key]
        if optional:
            return None
        raise ExpressionError(f"property '{key}' does not exist")
    if isinstance(value, list) and isinstance(key, int):
        return value[key] if -len(value) <= key < len(value) else None
    if optional:
        return None
    raise ExpressionError(f"cannot select '{key}'")


def _action_outputs(ctx: Context, name: str) -> Any:
    if name not in ctx.outputs:
        raise ExpressionError(f"The action '{name}' is not defined or has not run.")
    ctx.referenced.add(name)
    return ctx.outputs[name]


def _items(ctx: Context, name: str) -> Any:
    for loop, item in reversed(ctx.loops):
        if loop == name:
            return item
    raise ExpressionError(f"The 'items' function's argument '{name}' is not a parent foreach.")


def _item(ctx: Context) -> Any:
    if not ctx.loops:
        raise ExpressionError("The 'item' function can only be used inside a foreach.")
    return ctx.loops[-1][1]


def _string(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, (dict, list)):
        import json

        return json.dumps(value, separators=(",", ":"))
    return str(value)


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "body": lambda ctx, name: (_action_outputs(ctx, name) or {}).get("body"),
    "outputs": _action_outputs,
    "actions": lambda ctx, name: {"outputs": _action_outputs(ctx, name)},
    "items": _items,
    "item": _item,
    "triggerbody": lambda ctx: (ctx.trigger_outputs or {}).get("body"),
    "triggeroutputs": lambda ctx: ctx.trigger_outputs,
    "parameters": lambda ctx, name: ctx.parameters.get(name),
    "concat": lambda ctx, *args: "".join(_string(a) for a in args),
    "encodeuricomponent": lambda ctx, value: urllib.parse.quote(_string(value), safe=""),
    "string": lambda ctx, value: _string(value),
    "equals": lambda ctx, a, b: a == b,
    "not": lambda ctx, a: not a,
    "and": lambda ctx, *args: all(args),
    "or": lambda ctx, *args: any(args),
    "tolower": lambda ctx, value: _string(value).lower(),
    "toupper": lambda ctx, value: _string(value).upper(),
    "length": lambda ctx, value: len(value or []),
    "coalesce": lambda ctx, *args: next((a for a in args if a is not None), None),
    "first": lambda ctx, value: (value or [None])[0],
    "last": lambda ctx, value: (value or [None])[-1],
}


def evaluate(value: Any, ctx: Context) -> Any:
    """Evaluates every expression inside a JSON value (strings starting with '@', '@{...}' parts)."""
    if isinstance(value, dict):
        return {k: evaluate(v, ctx) for k, v in value.items()}
    if isinstance(value, list):
        return [evaluate(v, ctx) for v in value]
    if not isinstance(value, str) or "@" not in value:
        return value
    if value.startswith("@@"):
        return value[1:]
    if value.startswith("@") and not value.startswith("@{"):
        return _Parser(value[1:], ctx).parse()
    if value.startswith("@{") and value.endswith("}") and value.count("@{") == 1:
        return _string(_Parser(value[2:-1], ctx).parse())
    return re.sub(r"@\{(.*?)\}", lambda m: _string(_Parser(m.group(1), ctx).parse()), value)


def condition(expression: Any, ctx: Context) -> bool:
    """An If action's `expression`: a string expression or the designer's {"and": [{"equals": [a, b]}]}."""
    if isinstance(expression, str):
        return bool(evaluate(expression, ctx))
    if isinstance(expression, bool):
        return expression
    if isinstance(expression, dict) and len(expression) == 1:
        ((op, args),) = expression.items()
        op = op.lower()
        if op in ("and", "or"):
            results = [condition(a, ctx) for a in args]
            return all(results) if op == "and" else any(results)
        if op == "not":
            return not condition(args, ctx)
        function = _FUNCTIONS.get(op)
        if function is not None and isinstance(args, list):
            return bool(function(ctx, *[evaluate(a, ctx) for a in args]))
    raise ExpressionError(f"unsupported condition {expression!r}")
