"""Validation errors in words: the field, its rule and an example, never a regex; enums list their values.

msgspec names the offending field (`... - at `$.memories[3].agent_id``); the rule is read from that field's type
in the Struct that was decoded (`msgspec.inspect`), so the words always match what is enforced:

    agent_id must start with a letter and contain only letters, digits, '_' or '-' (at most 128), e.g. "researcher_1"
    memory_type must be one of "decision", "entity", "episodic" or "session"; got 'fact'
    limit must be a whole number from 1 to 1000, e.g. 50
    malformed JSON at byte 33: trailing comma in object

How a new field gets its wording, with nothing to write here:
- lengths, ranges, enums (`Literal`), booleans, lists and objects are worded from the type's constraints; the
  example is the type's `Meta(examples=[...])`, else one derived from the constraints;
- a `pattern` is worded by its entry in `patterns.RULES` (words and an example);
- a string parsed by its handler (a time, a comma list) states its rule with `Meta(extra={"rule": "must ..."})`.
`tests/test_error_messages.py` walks every request field of the OpenAPI table and fails on one left without words.
Only the error path runs this: type information is read once per decoded type and cached.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import msgspec
import msgspec.inspect as mi

from memtrace.patterns import RULES, in_words

ObjectExample = {"source": "chat"}
_AT = re.compile(r" - at `\$([^`]*)`$")
_STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\[[^\]]*\]")
_MALFORMED = re.compile(r"^JSON is malformed: (.*) \(byte (\d+)\)$")
_QUOTED = re.compile(r"`([^`]*)`")

Step = str | int


@functools.cache
def _info(root: Any) -> mi.Type:
    return mi.type_info(root)


def _peel(t: mi.Type) -> tuple[mi.Type, dict[str, Any], list[Any]]:
    """The type under `Annotated` metadata and `| None`, its `extra` and its examples (the outermost win)."""
    extra: dict[str, Any] = {}
    examples: list[Any] = []
    while True:
        if isinstance(t, mi.Metadata):
            extra = {**(t.extra or {}), **extra}
            examples = examples or list((t.extra_json_schema or {}).get("examples", ()))
            t = t.type
        elif isinstance(t, mi.UnionType):
            options = [o for o in t.types if not isinstance(o, mi.NoneType)]
            literals = [o for o in options if isinstance(o, mi.LiteralType)]
            if len(literals) == len(options) > 1:  # `MemoryType | Literal[""]`: one enum
                return mi.LiteralType(tuple(v for lit in literals for v in lit.values)), extra, examples
            if not options:
                return t, extra, examples
            t = options[0]
        else:
            return t, extra, examples


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def example(t: mi.Type) -> Any:
    """A valid value of `t`, for messages: its `examples`, else one derived from the constraints."""
    t, _, examples = _peel(t)
    if examples:
        return examples[0]
    if isinstance(t, mi.StrType):
        if t.pattern in RULES:
            return RULES[t.pattern][1]
        return ("text" + "x" * max(0, (t.min_length or 0) - 4))[: t.max_length]  # a placeholder that fits
    if isinstance(t, mi.IntType | mi.FloatType):
        low = t.ge if t.ge is not None else (t.gt + 1 if t.gt is not None else 0)
        high = t.le if t.le is not None else low + 10
        return low + (high - low) // 2 if isinstance(t, mi.IntType) else (low + high) / 2
    if isinstance(t, mi.LiteralType):
        return next((v for v in t.values if v != ""), None)
    if isinstance(t, mi.ListType):
        return [example(t.item_type)]
    if isinstance(t, mi.StructType):
        return {f.encode_name: example(f.type) for f in t.fields if f.required}
    if isinstance(t, mi.BoolType):
        return True
    return ObjectExample


def _bounds(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f" from {_number(low)} to {_number(high)}"
    if low is not None:
        return f" of at least {_number(low)}"
    return f" of at most {_number(high)}" if high is not None else ""


def _sized(noun: str, low: int | None, high: int | None) -> str:
    if low and high:
        return f"of {low} to {high} {noun}"
    if high is not None:
        return f"of at most {high} {noun if high != 1 else noun[:-1]}"
    return f"of at least {low} {noun if low != 1 else noun[:-1]}" if low else ""


def rule(t: mi.Type) -> str:
    """`must ...` in words, with an example (or the allowed values) for a value of type `t`."""
    shown = f", e.g. {_json(example(t))}"
    t, extra, _ = _peel(t)
    if "rule" in extra:
        return str(extra["rule"])
    if isinstance(t, mi.LiteralType):
        values = [_json(v) for v in t.values if v != ""]
        if len(values) <= 2:
            return "must be " + " or ".join(values)
        return f"must be one of {', '.join(values[:-1])} or {values[-1]}"
    if isinstance(t, mi.StrType):
        if t.pattern is not None:
            return in_words(RULES[t.pattern]) if t.pattern in RULES else f"is not in the accepted form{shown}"
        if t.min_length == 1 and t.max_length is None:
            return f"must be a non-empty string{shown}"
        return f"must be a string {_sized('characters', t.min_length, t.max_length)}".rstrip() + shown
    if isinstance(t, mi.IntType):
        return f"must be a whole number{_bounds(t.ge if t.gt is None else t.gt + 1, t.le)}{shown}"
    if isinstance(t, mi.FloatType):
        return f"must be a number{_bounds(t.ge if t.gt is None else t.gt, t.le)}{shown}"
    if isinstance(t, mi.BoolType):
        return "must be true or false"
    if isinstance(t, mi.ListType):
        return f"must be a list {_sized('items', t.min_length, t.max_length)}".rstrip() + shown
    if isinstance(t, mi.StructType):
        required = example(t)
        return "must be a JSON object" + (f", e.g. {_json(required)}" if required else "")
    return f"must be a JSON object{shown}" if isinstance(t, mi.DictType) else "has a value of the wrong type"


def _steps(path: str) -> list[Step]:
    return [int(m[2]) if m[2] else (m[1] or "") for m in _STEP.finditer(path)]


def _resolve(t: mi.Type, steps: list[Step]) -> mi.Type | None:
    """The type at `steps` under `t` (None: the path leaves the type, e.g. inside a free-form object)."""
    for step in steps:
        t, _, _ = _peel(t)
        if isinstance(t, mi.StructType) and isinstance(step, str):
            field = next((f for f in t.fields if f.encode_name == step), None)
            if field is None:
                return None
            t = field.type
        elif isinstance(t, mi.ListType) and isinstance(step, int):
            t = t.item_type
        else:
            return None
    return t


def _label(label: str, steps: list[Step]) -> str:
    out = label
    for step in steps:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else step)
    return out or "the request body"


def validation(exc: msgspec.ValidationError, root: Any, label: str = "") -> str:
    """The sentence for a ValidationError of decoding `root`; `label` names the decoded value (`memories`)."""
    text = str(exc)
    at = _AT.search(text)
    message, steps = (text[: at.start()], _steps(at[1])) if at else (text, [])
    top = _info(root)
    quoted = _QUOTED.findall(message)
    if message.startswith("Object contains unknown field") and quoted:
        where = _resolve(top, steps)
        peeled = _peel(where)[0] if where is not None else None
        names = [f.encode_name for f in peeled.fields] if isinstance(peeled, mi.StructType) else []
        inside = f" in {_label(label, steps)}" if steps or label else ""
        return f"unknown field {quoted[0][:64]!r}{inside}; accepted fields: {', '.join(names)}"
    missing = message.startswith("Object missing required field") and quoted
    if missing:
        steps = [*steps, quoted[0]]
    field = _resolve(top, steps)
    words = rule(field) if field is not None else "has a value of the wrong type"
    if missing:
        return f"{_label(label, steps)} is required and {words}"
    enum = message.startswith("Invalid enum value ")
    got = f"; got {message.removeprefix('Invalid enum value ')[:64]}" if enum else ""
    return f"{_label(label, steps)} {words}{got}"


def malformed(exc: msgspec.DecodeError, size: int) -> str:
    """One sentence with the byte offset: `malformed JSON at byte 33: trailing comma in object`."""
    text = str(exc)
    found = _MALFORMED.match(text)
    if found:
        return f"malformed JSON at byte {found[2]}: {found[1]}"
    if text == "Input data was truncated":
        return f"malformed JSON at byte {size}: the body ends before the JSON value does"
    return f"malformed JSON: {text[:1].lower()}{text[1:]}"
