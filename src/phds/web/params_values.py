"""A generated form's values both ways: submitted fields → the mapping a model validates
(:func:`read_form`), and a mapping → the fields that show it (:func:`form_from_values`).

Empty inputs (and values equal to their schema default) are left out, so the model's defaults apply
and a missing required value is reported by the model itself, at its field. What cannot be converted
(a number that is not one, YAML that does not parse) is reported per field here, before the study is
checked.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import yaml

from phds.documents import parse_text
from phds.errors import InputError
from phds.web.params_form import INCLUDE_KEY, ITEMS_KEY, FormField

FormData = Mapping[str, list[str]]
"""A submitted form: each field name with its values (several for checkboxes)."""

_MISSING: Any = object()  # a value the form leaves out (None would be an explicit null)


def read_form(fields: list[FormField], form: FormData) -> tuple[dict[str, Any], dict[str, str]]:
    """The mapping *form* fills in for *fields*, and the problems found per field name."""
    errors: dict[str, str] = {}
    out: dict[str, Any] = {}
    for f in fields:
        value = _read(f, form, errors)
        if value is not _MISSING:
            out[f.key] = value
    return out, errors


def _first(form: FormData, name: str) -> str:
    values = form.get(name) or [""]
    return values[0].strip()


def _read(f: FormField, form: FormData, errors: dict[str, str]) -> Any:
    """The field's value; its schema default (of an optional field) is left out, as a study file would
    leave it out (a model may tell a default it set from one it was given)."""
    try:
        value = _convert(f, form, errors)
    except ValueError as exc:
        errors[f.name] = str(exc)
        return _MISSING
    if f.kind not in ("group", "repeat") and not f.required and f.default is not None and value == f.default:
        return _MISSING
    return value


def _convert(f: FormField, form: FormData, errors: dict[str, str]) -> Any:
    if f.kind == "group":
        if f.optional_group and not form.get(f.include_name):
            return _MISSING
        values: dict[str, Any] = {}
        for child in f.children:
            value = _read(child, form, errors)
            if value is not _MISSING:
                values[child.key] = value
        return values if values or f.required or f.optional_group else _MISSING
    if f.kind == "repeat":
        items = [_convert(item, form, errors) for item in f.children]
        return [{} if item is _MISSING else item for item in items]
    if f.kind == "checkbox":
        return bool(form.get(f.name))
    if f.kind == "checkboxes":
        chosen = [f.choices[v] for v in form.get(f.name) or [] if v in f.choices]
        return chosen if chosen else _MISSING
    text = _first(form, f.name) if f.kind != "textarea" else (form.get(f.name) or [""])[0]
    if not text.strip():
        return _MISSING
    if f.kind == "select":
        if text not in f.choices:
            raise ValueError(f"choose one of {', '.join(k for k in f.choices if k)}")
        return f.choices[text]
    if f.kind == "number":
        return _number(text, f.value_type)
    if f.kind == "list":
        parts = [p.strip() for p in text.replace("\n", ",").split(",")]
        items = [_number(p, f.value_type) for p in parts if p]
        if f.fixed_items is not None and len(items) != f.fixed_items:
            raise ValueError(f"give exactly {f.fixed_items} values separated by commas")
        return items
    if f.kind == "yaml":
        try:
            data, _ = parse_text(text, f.label)
        except InputError as exc:
            raise ValueError(bare_message(exc, keep_position=True)) from None
        return data
    if f.value_type == "scalar":
        return _number(text, "scalar")
    return text.strip() if f.kind == "text" else text


def bare_message(exc: InputError, *, keep_position: bool = False) -> str:
    """The message of *exc* without its ``file …, field …:`` prefix, since the form shows where; with
    *keep_position*, a line and column stay (``line 2, column 5: …``)."""
    where = [
        f"{label} {value}"
        for label, value in (
            ("file", exc.file),
            ("line", exc.line),
            ("column", exc.column),
            ("field", exc.field),
        )
        if value is not None
    ]
    bare = exc.message.removeprefix(f"{', '.join(where)}: ") if where else exc.message
    position = [f"{label} {value}" for label, value in (("line", exc.line), ("column", exc.column)) if value]
    return f"{', '.join(position)}: {bare}" if keep_position and position else bare


def _number(text: str, value_type: str) -> Any:
    """*text* as an int or a float (``scalar``: a number if it reads as one, else the text)."""
    if value_type == "integer":
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a whole number") from None
    if value_type in ("number", "scalar"):
        try:
            number = float(text)
        except ValueError:
            if value_type == "scalar":
                return text
            raise ValueError(f"{text!r} is not a number") from None
        if not math.isfinite(number):
            raise ValueError(f"{text!r} is not a finite number")
        return int(number) if value_type == "scalar" and number.is_integer() and "." not in text else number
    return text


def form_from_values(fields: list[FormField], values: Mapping[str, Any]) -> dict[str, list[str]]:
    """The form data that shows *values* (a mapping of the fields' keys) in *fields*; empty where a key
    is absent, so the field shows its default."""
    out: dict[str, list[str]] = {}
    for f in fields:
        if f.key in values:
            _show(f, values[f.key], out)
        else:
            _defaults(f, out)
    return out


def counts_for(fields: list[FormField], values: Mapping[str, Any]) -> dict[str, int]:
    """How many items each repeatable fieldset needs to show *values*."""
    counts: dict[str, int] = {}

    def visit(f: FormField, value: Any) -> None:
        if f.kind == "repeat" and isinstance(value, list):
            counts[f.name] = max(len(value), 1)
            for item, item_value in zip(f.children, value, strict=False):
                visit(item, item_value)
        elif f.kind == "group" and isinstance(value, Mapping):
            for child in f.children:
                if child.key in value:
                    visit(child, value[child.key])

    for f in fields:
        if f.key in values:
            visit(f, values[f.key])
    return counts


def _defaults(f: FormField, out: dict[str, list[str]]) -> None:
    if f.kind in ("group", "repeat"):
        if f.kind == "repeat":
            out[f.items_name] = [str(len(f.children))]
        for child in f.children:
            _defaults(child, out)
        return
    shown = _shown(f, f.default)
    if shown:
        out[f.name] = shown


def _show(f: FormField, value: Any, out: dict[str, list[str]]) -> None:
    if f.kind == "group":
        if f.optional_group and value is not None:
            out[f.include_name] = ["yes"]
        inner = value if isinstance(value, Mapping) else {}
        for child in f.children:
            if child.key in inner:
                _show(child, inner[child.key], out)
            else:
                _defaults(child, out)
        return
    if f.kind == "repeat":
        items = value if isinstance(value, list) else []
        out[f.items_name] = [str(len(f.children))]
        for item, item_value in zip(f.children, [*items, *([{}] * len(f.children))], strict=False):
            _show(item, item_value, out)
        return
    shown = _shown(f, value)
    if shown:
        out[f.name] = shown


def _shown(f: FormField, value: Any) -> list[str]:
    """The text(s) a control shows for *value*."""
    if value is None:
        return []
    if f.kind == "checkbox":
        return ["true"] if value else []
    if f.kind == "checkboxes":
        return [str(v) for v in value]
    if f.kind == "list":
        return [", ".join(str(v) for v in value)] if value else []
    if f.kind == "yaml":
        if value in ({}, []):
            return []
        return [yaml.safe_dump(value, sort_keys=False, allow_unicode=True, width=100).strip()]
    if f.kind == "textarea" and not isinstance(value, str):
        return [yaml.safe_dump(value, sort_keys=False, allow_unicode=True, width=100).strip()]
    if isinstance(value, bool | int | float):
        return [json.dumps(value) if isinstance(value, bool) else str(value)]
    return [str(value)]


def apply_action(action: str, form: dict[str, list[str]]) -> dict[str, list[str]]:
    """The form after an "Add another" (``add:<name>``) or "Remove" (``remove:<name>.<i>``) button."""
    verb, _, target = action.partition(":")
    if verb == "add":
        key = f"{target}.{ITEMS_KEY}"
        count = int((form.get(key) or ["1"])[0] or 1)
        return {**form, key: [str(count + 1)]}
    if verb == "remove" and "." in target:
        name, _, index_text = target.rpartition(".")
        if not index_text.isdigit():
            return form
        index, key = int(index_text), f"{name}.{ITEMS_KEY}"
        count = int((form.get(key) or ["1"])[0] or 1)
        kept: dict[str, list[str]] = {}
        for field_name, values in form.items():
            tail = field_name.removeprefix(f"{name}.")
            head, _, rest = tail.partition(".")
            if field_name == tail or not head.isdigit() or int(head) < index:
                kept[field_name] = values
            elif int(head) > index:
                kept[f"{name}.{int(head) - 1}" + (f".{rest}" if rest else "")] = values
        kept[key] = [str(max(count - 1, 1))]
        return kept
    return form


def counts_in(form: FormData) -> dict[str, int]:
    """The item count of each repeatable fieldset, as the submitted form says (hidden ``__items``)."""
    counts: dict[str, int] = {}
    for name, values in form.items():
        if name.endswith(f".{ITEMS_KEY}") and values and values[0].isdigit():
            counts[name.removesuffix(f".{ITEMS_KEY}")] = int(values[0])
    return counts


def error_target(fields: list[FormField], error_field: str | None) -> str | None:
    """The name of the field an error at *error_field* (a dotted path) belongs to: the field itself, or
    the closest field that contains it (a YAML field holds everything under it)."""
    if not error_field:
        return None
    names = {f.name for top in fields for f in top.walk()}
    parts = error_field.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in names:
            return candidate
    return None


__all__ = [
    "INCLUDE_KEY",
    "FormData",
    "apply_action",
    "bare_message",
    "counts_for",
    "counts_in",
    "error_target",
    "form_from_values",
    "read_form",
]
