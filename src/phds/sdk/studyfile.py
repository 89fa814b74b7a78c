"""Study files: YAML or JSON on disk to a :class:`~phds.protocol.studies.StudySpec`.

Every problem is an :class:`~phds.errors.InputError` naming the file, the field (as a dotted path such as
``analysis.params.breakdowns.1``) and, for YAML, the line. A feasibility cohort may be written inline
(``params.cohort``) or kept in its own file (``params.cohort_file``, relative to the study file); the
file's text is read into ``params.cohort`` and checked here, so its own errors name the cohort file.
Analysis parameters are checked against the locally installed analysis when it knows the name and
version; the hub checks everything again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from phds.documents import located_error, model_from_document, read_document
from phds.errors import InputError
from phds.protocol.studies import StudySpec

log = logging.getLogger(__name__)

MAX_STUDY_FILE_BYTES = 1_000_000


def load_study(path: str | Path) -> StudySpec:
    """Read and check a study file (``.yaml``, ``.yml`` or ``.json``)."""
    data, lines = read_document(path, max_bytes=MAX_STUDY_FILE_BYTES, what="study file")
    return study_from_mapping(data, base_dir=Path(path).parent, file=str(path), lines=lines)


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
        raise located_error(f"{', '.join(duplicates)} named more than once", ("hospitals",), file, lines)
    spec = model_from_document(StudySpec, data, file=file, lines=lines)
    _check_params(spec, file, lines or {})
    return spec


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
        raise located_error("give either cohort or cohort_file, not both", loc, file, lines)
    if not isinstance(ref, str) or not ref.strip():
        raise located_error("must be the path of a cohort file", loc, file, lines)
    cohort_path = base_dir / ref
    try:
        text = cohort_path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise located_error(f"cannot read cohort file {cohort_path}: {reason}", loc, file, lines) from None
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
        raise located_error(message, loc, file, lines) from None
