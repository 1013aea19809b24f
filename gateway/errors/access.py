"""Refusals for who the caller is or what they may see."""

from __future__ import annotations

from gateway.errors.base import AccessRefused

__all__ = [
    "AdminRoleRequired",
    "PasswordChangeRequired",
    "PasswordTooWeak",
    "CredentialsInvalid",
    "Forbidden",
    "LoginRateLimited",
    "NotFound",
    "ScopeMissing",
    "Unauthenticated",
    "UserDisabled",
]


class Unauthenticated(AccessRefused):
    """No valid API key or session token came with the request (missing, unknown, expired
    or revoked)."""

    code = "unauthenticated"
    status = 401
    title = "Authentication required"


class CredentialsInvalid(AccessRefused):
    """A login named an unknown user or a wrong password (the same answer for both)."""

    code = "credentials_invalid"
    status = 401
    title = "Wrong username or password"


class LoginRateLimited(AccessRefused):
    """One client address tried to log in more often than ``login_rate_limit`` allows."""

    code = "login_rate_limited"
    status = 429
    title = "Too many logins from this address"


class Forbidden(AccessRefused):
    """The caller is known but may not do this (invariant 7)."""

    code = "forbidden"
    status = 403
    title = "Not allowed"


class NotFound(AccessRefused):
    """No such resource, or not one the caller may see (a signer never learns of other
    signers' requests)."""

    code = "not_found"
    status = 404
    title = "Not found"


class PasswordChangeRequired(AccessRefused):
    """The user signed in with a one-time password and must choose their own first
    (``POST /mobile/v1/password``)."""

    code = "password_change_required"
    status = 403
    title = "Choose your own password first"


class PasswordTooWeak(AccessRefused):
    """The new password does not follow the rules: at least 10 characters, 5 of them
    different, not containing the username, not the current one."""

    code = "password_too_weak"
    status = 422
    title = "The new password does not follow the rules"


class UserDisabled(AccessRefused):
    """The account was disabled by an administrator: it cannot sign in, and its sessions
    stopped working (told only to whoever gave its right password or session token)."""

    code = "user_disabled"
    status = 403
    title = "This account is disabled"


class AdminRoleRequired(AccessRefused):
    """The administration API is for users with the ``admin`` role."""

    code = "admin_role_required"
    status = 403
    title = "Administrators only"


class ScopeMissing(AccessRefused):
    """The integration client's API key was not given the scope this call needs
    (``requests:submit``, ``requests:read`` or ``validations``)."""

    code = "scope_missing"
    status = 403
    title = "The API key lacks the scope for this call"
