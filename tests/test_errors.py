"""The exception tree: one base, each class with its HTTP status and exit code, drawn in the docstring."""

from __future__ import annotations

import phds.errors as errors_module
from phds.errors import CdmLoadError, InputError, PhdsError


def _error_classes() -> list[type[PhdsError]]:
    return [
        obj for obj in vars(errors_module).values() if isinstance(obj, type) and issubclass(obj, PhdsError)
    ]


def test_every_error_derives_from_one_base_and_is_drawn_in_the_tree() -> None:
    doc = errors_module.__doc__ or ""
    for cls in _error_classes():
        assert cls.__name__ in doc, f"{cls.__name__} is missing from the tree in phds/errors.py"
        assert 400 <= cls.http_status < 600 or cls is PhdsError
        assert cls.exit_code >= 1


def test_input_error_names_where() -> None:
    err = CdmLoadError("not a date", file="PERSON.csv", line=7, column="birth_datetime")
    assert str(err) == "file PERSON.csv, line 7, column birth_datetime: not a date"
    assert isinstance(err, InputError)
    assert err.http_status == 422
    assert str(InputError("missing", field="analysis.params")) == "field analysis.params: missing"
