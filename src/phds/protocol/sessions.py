"""Signing in with a password: what the portal (or any client) sends, and what a password change is."""

from __future__ import annotations

from pydantic import Field

from phds.protocol.common import WireModel
from phds.protocol.users import Email


class SignIn(WireModel):
    """Email and password; answered with a short-lived session token (``purpose = "session"``)."""

    email: Email
    password: str = Field(min_length=1, max_length=1024)


class PasswordChange(WireModel):
    """A person's new password. ``current_password`` is required when changing one's own."""

    new_password: str = Field(max_length=1024)
    current_password: str | None = Field(default=None, max_length=1024)
