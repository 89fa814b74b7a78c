"""The one exception tree of PHDS.

Every error PHDS raises on purpose derives from :class:`PhdsError`. Each class carries the HTTP status
the hub answers with and the exit code the CLI ends with, so both map errors in one place.

    PhdsError                      500 / exit 1
    ├── ConfigError                500 / exit 2   a setting or configuration file is wrong or unsafe
    ├── InputError                 422 / exit 2   bad input from a person; names the field, file, line, column
    │   ├── CdmLoadError           422 / exit 2   an OMOP export that cannot be loaded as it is
    │   └── PayloadTooLarge        413 / exit 2   a request body or document larger than allowed
    ├── StoreError                 503 / exit 3   a database is unreachable or refused an operation
    ├── AuthenticationError        401 / exit 4   missing, wrong, expired or revoked credential
    │   └── SignatureInvalid       401 / exit 4   a forged, altered, expired or revoked signature
    ├── PermissionDenied           403 / exit 4   authenticated, but not allowed to do this
    ├── NotFound                   404 / exit 5   no such object (or not visible to the caller)
    ├── Conflict                   409 / exit 6   the object is in a state that forbids the operation
    ├── SecAggError                409 / exit 6   a secure-aggregation step refused or cannot complete
    └── DisclosureRefused          403 / exit 7   the disclosure gate refused to release a value
"""

from __future__ import annotations


class PhdsError(Exception):
    """Base of every deliberate PHDS error."""

    http_status: int = 500
    exit_code: int = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(PhdsError):
    """A setting or configuration file is wrong, missing or unsafe."""

    exit_code = 2


class InputError(PhdsError):
    """Bad input from a person; the message names what and where."""

    http_status = 422
    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        column: str | None = None,
        field: str | None = None,
    ) -> None:
        where = []
        if file is not None:
            where.append(f"file {file}")
        if line is not None:
            where.append(f"line {line}")
        if column is not None:
            where.append(f"column {column}")
        if field is not None:
            where.append(f"field {field}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)
        self.file = file
        self.line = line
        self.column = column
        self.field = field


class CdmLoadError(InputError):
    """An OMOP CDM export that cannot be loaded as it is; nothing was loaded."""


class PayloadTooLarge(InputError):
    """A request body or uploaded document is larger than the configured limit."""

    http_status = 413


class StoreError(PhdsError):
    """A database is unreachable or refused an operation."""

    http_status = 503
    exit_code = 3


class AuthenticationError(PhdsError):
    """Missing, wrong, expired or revoked credential."""

    http_status = 401
    exit_code = 4


class SignatureInvalid(AuthenticationError):
    """A signature, attestation or signed envelope does not verify; the message says why."""


class PermissionDenied(PhdsError):
    """The caller is authenticated but may not do this."""

    http_status = 403
    exit_code = 4


class NotFound(PhdsError):
    """No such object, or none visible to the caller."""

    http_status = 404
    exit_code = 5


class Conflict(PhdsError):
    """The object's state forbids the operation."""

    http_status = 409
    exit_code = 6


class SecAggError(PhdsError):
    """A secure-aggregation step refused (e.g. to reveal both masks of one party) or cannot complete
    (e.g. fewer than the threshold of parties remain); the message says which and why."""

    http_status = 409
    exit_code = 6


class DisclosureRefused(PhdsError):
    """The disclosure gate refused to release a value."""

    http_status = 403
    exit_code = 7
