"""Study files: YAML or JSON on disk to a :class:`~phds.protocol.studies.StudySpec`.

Every problem is an :class:`~phds.errors.InputError` naming the file, the field (as a dotted path such as
``analysis.params.breakdowns.1``) and, for YAML, the line. A feasibility cohort may be written inline
(``params.cohort``) or kept in its own file (``params.cohort_file``, relative to the study file); the
file's text is read into ``params.cohort`` and checked here, so its own errors name the cohort file.
Analysis parameters are checked against the locally installed analysis when it knows the name and
version; the hub checks everything again.
"""

from __future__ import annotations

import difflib
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from phds.errors import InputError
from phds.protocol.studies import StudySpec

log = logging.getLogger(__name__)

MAX_STUDY_FILE_BYTES = 1_000_000


def load_study(path: str | Path) -> StudySpec:
    """Read and check a study file (``.yaml``, ``.yml`` or ``.json``)."""
    file = Path(path)
    name = str(file)
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read the study file: {exc.strerror or exc}", file=name) from None
    if len(raw) > MAX_STUDY_FILE_BYTES:
        raise InputError(f"a study file may have at most {MAX_STUDY_FILE_BYTES:,} bytes", file=name)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", file=name) from None
    data, lines = _parse(text, name, json_only=file.suffix.lower() == ".json")
    return study_from_mapping(data, base_dir=file.parent, file=name, lines=lines)


def study_from_mapping(
    data: Any,
    *,
    base_dir: Path | None = None,
    file: str | None = None,
    lines: Mapping[tuple[str, ...], int] | None = None,
) -> StudySpec:
    """Check a study given as a mapping (as parsed from a file); ``cohort_file`` is read from *base_dir*."""
    if not isinstance(data, Mapping):
        raise InputError("a study must be a mapping of keys to values", file=file, field="(root)")
    data = _with_cohort_file(dict(data), base_dir or Path.cwd(), file, lines or {})
    duplicates = _duplicates(data.get("hospitals"))
    if duplicates:
        raise _error(f"{', '.join(duplicates)} named more than once", ("hospitals",), file, lines)
    try:
        spec = StudySpec.model_validate(data)
    except ValidationError as exc:
        problems = exc.errors()
        # An unknown key is usually a misspelt one, so report it before the "missing" it causes.
        first = next((e for e in problems if e["type"] == "extra_forbidden"), problems[0])
        loc = tuple(str(part) for part in first["loc"])
        message = str(first["msg"]).removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            allowed = _allowed(loc)
            guess = difflib.get_close_matches(loc[-1], allowed, n=1)
            hint = f" (did you mean {guess[0]!r}?)" if guess else ""
            message = f"unknown key {loc[-1]!r}{hint}; allowed here: {', '.join(allowed)}"
        raise _error(message, loc, file, lines) from None
    _check_params(spec, file, lines or {})
    return spec


def _parse(text: str, name: str, *, json_only: bool) -> tuple[Any, dict[tuple[str, ...], int]]:
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


def _error(
    message: str, loc: tuple[str, ...], file: str | None, lines: Mapping[tuple[str, ...], int] | None
) -> InputError:
    line = None
    if lines:
        for end in range(len(loc), -1, -1):
            if loc[:end] in lines:
                line = lines[loc[:end]]
                break
    return InputError(message, file=file, line=line, field=".".join(loc) or "(root)")


def _allowed(loc: tuple[str, ...]) -> list[str]:
    if loc[:1] == ("analysis",) and len(loc) == 2:
        from phds.protocol.studies import AnalysisSpec

        return sorted(AnalysisSpec.model_fields)
    return sorted(StudySpec.model_fields)


def _duplicates(hospitals: Any) -> list[str]:
    if not isinstance(hospitals, list):
        return []
    seen: set[str] = set()
    twice: list[str] = []
    for h in hospitals:
        if isinstance(h, str) and h in seen and h not in twice:
            twice.append(h)
        seen.add(str(h))
    return twice


def _with_cohort_file(
    data: dict[str, Any], base_dir: Path, file: str | None, lines: Mapping[tuple[str, ...], int]
) -> dict[str, Any]:
    """Replace ``analysis.params.cohort_file`` by the file's text in ``analysis.params.cohort``."""
    analysis = data.get("analysis")
    if not isinstance(analysis, Mapping) or not isinstance(analysis.get("params"), Mapping):
        return data
    params = dict(analysis["params"])
    if "cohort_file" not in params:
        return data
    loc = ("analysis", "params", "cohort_file")
    ref = params.pop("cohort_file")
    if "cohort" in params:
        raise _error("give either cohort or cohort_file, not both", loc, file, lines)
    if not isinstance(ref, str) or not ref.strip():
        raise _error("must be the path of a cohort file", loc, file, lines)
    cohort_path = base_dir / ref
    try:
        text = cohort_path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise _error(f"cannot read cohort file {cohort_path}: {reason}", loc, file, lines) from None
    from phds.cohorts import parse_cohort

    parse_cohort(text, filename=str(cohort_path))  # its errors name the cohort file, line and field
    params["cohort"] = text
    log.debug("read cohort %s for %s", cohort_path, file)
    return {**data, "analysis": {**analysis, "params": params}}


def _check_params(spec: StudySpec, file: str | None, lines: Mapping[tuple[str, ...], int]) -> None:
    """Check parameters with the installed analysis, when it has this name and version."""
    from phds.analyses import available_analyses

    analysis = available_analyses().get(spec.analysis.name)
    if analysis is None or (spec.analysis.version not in (None, analysis.version)):
        return  # the hub may know analyses (or versions) this installation does not
    try:
        analysis.parse_params(spec.analysis.params)
    except InputError as exc:
        loc = tuple((exc.field or "analysis.params").split("."))
        message = exc.message.split(": ", 1)[-1] if exc.field else exc.message
        raise _error(message, loc, file, lines) from None
