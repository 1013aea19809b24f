"""FastAPI dependencies shared by the mobile routes: the gateway context, the signed-in
signer, and the client's address for the audit log."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from gateway.context import GatewayContext, context_of
from gateway.db.models import User
from mobile_api import auth

__all__ = ["Context", "SessionUser", "Signer", "client_address"]

Context = Annotated[GatewayContext, Depends(context_of)]
Signer = Annotated[User, Depends(auth.current_user)]
# signed in, but perhaps still with a one-time password: only to change it, or log out
SessionUser = Annotated[User, Depends(auth.session_user)]


def client_address(request: Request) -> str | None:
    """The peer's IP address as uvicorn saw it (after trusted proxy headers), or None."""
    return request.client.host if request.client else None
