"""Files people write (study files, tariffs, scenarios, applications): YAML or JSON to pydantic models.

Every problem is an :class:`~phds.errors.InputError` naming the file, the field as a dotted path (such as
``prices.feasibility.academic``) and, for YAML, the line. An unknown key is reported before the "missing"
it usually causes, with the nearest allowed key as a hint. Hub, SDK, billing and node all use this.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from phds.errors import InputError

M = TypeVar("M", bound=BaseModel)

#: Line of each key and list item, by its path of keys (list items by their index as text).
LineIndex = Mapping[tuple[str, ...], int]


def read_document(path: str | Path, *, max_bytes: int, what: str) -> tuple[Any, dict[tuple[str, ...], int]]:
    """Parse the YAML or JSON file *path* (*what* names it in errors): its data and its line index."""
    file = Path(path)
    name = str(file)
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read the {what}: {exc.strerror or exc}", file=name) from None
    if len(raw) > max_bytes:
        raise InputError(f"a {what} may have at most {max_bytes:,} bytes", file=name)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", file=name) from None
    return parse_text(text, name, json_only=file.suffix.lower() == ".json")


def parse_text(text: str, name: str, *, json_only: bool = False) -> tuple[Any, dict[tuple[str, ...], int]]:
    """Parse YAML (or only JSON) *text* from the file *name*: its data and its line index."""
    if json_only:
        try:
            return json.loads(text), {}
        except json.JSONDecodeError as exc:
            raise InputError(
                f"not valid JSON: {exc.msg}", file=name, line=exc.lineno, column=str(exc.colno)
            ) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        raise InputError(
            f"not valid YAML: {exc.problem or exc}",
            file=name,
            line=mark.line + 1 if mark else None,
            column=str(mark.column + 1) if mark else None,
        ) from None
    except yaml.YAMLError as exc:
        raise InputError(f"not valid YAML: {exc}", file=name) from None
    lines: dict[tuple[str, ...], int] = {}
    if node is not None:
        _index_lines(node, (), lines)
    return data, lines


def _index_lines(node: yaml.Node, path: tuple[str, ...], out: dict[tuple[str, ...], int]) -> None:
    """Record the line of every key and list item, so errors can point at them."""
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = (*path, str(key.value))
            out[child] = key.start_mark.line + 1
            _index_lines(value, child, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index_lines(item, (*path, str(i)), out)


def located_error(
    message: str, loc: tuple[str, ...], file: str | None, lines: LineIndex | None
) -> InputError:
    """An :class:`InputError` at *loc*, with the line of its nearest located ancestor."""
    line = None
    if lines:
        for end in range(len(loc), -1, -1):
            if loc[:end] in lines:
                line = lines[loc[:end]]
                break
    return InputError(message, file=file, line=line, field=".".join(loc) or "(root)")


def validation_error(
    exc: ValidationError, model: type[BaseModel], file: str | None, lines: LineIndex | None
) -> InputError:
    """The first problem of a pydantic *exc* as a located :class:`InputError`."""
    problems = exc.errors()
    first = next((e for e in problems if e["type"] == "extra_forbidden"), problems[0])
    loc = tuple(str(part) for part in first["loc"])
    message = str(first["msg"]).removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        allowed = allowed_keys(model, loc[:-1])
        guess = difflib.get_close_matches(loc[-1], allowed, n=1)
        hint = f" (did you mean {guess[0]!r}?)" if guess else ""
        listing = f"; allowed here: {', '.join(allowed)}" if allowed else ""
        message = f"unknown key {loc[-1]!r}{hint}{listing}"
    return located_error(message, loc, file, lines)


def allowed_keys(model: type[BaseModel], parent: tuple[str, ...]) -> list[str]:
    """The field names of the model found at *parent* inside *model* (empty when it cannot tell)."""
    current: Any = model
    for part in parent:
        if part.isdigit() or current is None:
            continue  # a list item: the model is the list's item type, found from the field's annotation
        is_model = isinstance(current, type) and issubclass(current, BaseModel)
        field = current.model_fields.get(part) if is_model else None
        current = _model_in(field.annotation) if field is not None else None
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted(current.model_fields)
    return []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model in an annotation such as ``Model``, ``list[Model]`` or ``Model | None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def model_from_document(
    model: type[M], data: Any, *, file: str | None = None, lines: LineIndex | None = None
) -> M:
    """Validate parsed *data* as *model*; problems become located :class:`InputError` s."""
    if not isinstance(data, Mapping):
        raise InputError("must be a mapping of keys to values", file=file, field="(root)")
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        raise validation_error(exc, model, file, lines) from None


def load_model(model: type[M], path: str | Path, *, max_bytes: int = 1_000_000, what: str = "file") -> M:
    """Read the YAML or JSON file *path* as *model*."""
    data, lines = read_document(path, max_bytes=max_bytes, what=what)
    return model_from_document(model, data, file=str(path), lines=lines)
