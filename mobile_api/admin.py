"""The administration API (``/admin/v1``) for users with the ``admin`` role, signed in
with the same session as the tablet app (``POST /mobile/v1/sessions``): accounts,
integration clients, the tokens and the keys on them, credentials and who holds them
(registered, revoked, their PIN policy), organisations (seal image, handover of their
token), the audit log.

It calls the same use cases as the ``signing-gateway`` commands; every change is
audited with ``user:<admin>`` and the caller's address. Another role answers 403
``admin_role_required``. Devices and passkeys are only shown: revoking one is for the
signer or the bridge's administrator (docs/security-model.md)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile

from gateway.admin import clients, listings, tokens, users
from gateway.admin.enrolment import add_user, register_credential, revoke_credential
from gateway.admin.organisations import hand_over, set_seal
from gateway.admin.signature_images import MAX_IMAGE_BYTES
from gateway.audit.search import MAX_PAGE, AuditFilter, search_audit
from gateway.bridges import add_ca_certificates, local_registry
from gateway.db.models import User
from gateway.errors import AdminRoleRequired, NotFound, ParameterInvalid
from gateway.secrets_at_rest import InstallationKeys
from hsm_bridge.credentials import SignatureMechanism
from hsm_bridge.sam.signers import SignerRegistry
from mobile_api.admin_schemas import (
    AuditEntryView,
    AuditPageView,
    ClientAdded,
    ClientBody,
    ClientKey,
    ClientSecret,
    ClientView,
    CredentialBody,
    CredentialView,
    DeviceView,
    HandoverBody,
    HandoverView,
    OrganisationView,
    PinPolicyBody,
    SealView,
    TokenView,
    UserAdded,
    UserBody,
    UserPatch,
    UserView,
)
from mobile_api.deps import Context, Signer, client_address

__all__ = ["router"]

router = APIRouter(prefix="/admin/v1", tags=["administration"])


def current_admin(user: Signer) -> User:
    """FastAPI dependency: the signed-in user (own password chosen), who must have the
    ``admin`` role; AdminRoleRequired (403) otherwise."""
    if user.role != "admin":
        raise AdminRoleRequired("only an administrator may use the administration API")
    return user


Admin = Annotated[User, Depends(current_admin)]


def _actor(admin: User) -> str:
    return f"user:{admin.username}"


@router.get("/users", response_model=list[UserView])
def get_users(context: Context, admin: Admin) -> list[UserView]:
    """Every account, by username."""
    return [UserView.of(u) for u in users.list_users(context.db)]


@router.post("/users", response_model=UserAdded, status_code=201)
def post_user(body: UserBody, request: Request, context: Context, admin: Admin) -> UserAdded:
    """Add an account with a one-time password (shown once): the user chooses their own
    at the first sign-in. ``parameter_invalid`` for a taken username,
    ``organisation_unknown``."""
    added = add_user(
        context.db,
        body.username,
        body.display_name,
        body.role,
        now=context.clock(),
        organisation=body.organisation,
        actor=_actor(admin),
        client_address=client_address(request),
    )
    with context.db.transaction() as session:
        summary = users.user_summary(session, users.user_named(session, added.username))
    return UserAdded(user=UserView.of(summary), initial_password=added.password)


@router.patch("/users/{username}", response_model=UserView)
def patch_user(
    username: str, body: UserPatch, request: Request, context: Context, admin: Admin
) -> UserView:
    """Change the display name, role or organisation (``null``: none); what is left out
    stays. A keeper of an organisation's key stays its clerk (``parameter_invalid``).
    Not one's own role (``parameter_invalid``): that could leave no administrator."""
    if username == admin.username and body.role is not None and body.role != admin.role:
        raise ParameterInvalid("an administrator cannot change their own role")
    changed = users.update_user(
        context.db,
        username,
        actor=_actor(admin),
        now=context.clock(),
        display_name=body.display_name,
        role=body.role,
        organisation=body.organisation,
        set_organisation="organisation" in body.model_fields_set,
        client_address=client_address(request),
    )
    return UserView.of(changed.user)


@router.post("/users/{username}/disable", response_model=UserView)
def disable(username: str, request: Request, context: Context, admin: Admin) -> UserView:
    """Disable the account: no sign-in (``user_disabled``), its sessions end now. Again:
    nothing changes. Not one's own account (``parameter_invalid``)."""
    if username == admin.username:
        raise ParameterInvalid("an administrator cannot disable their own account")
    done = users.disable_user(
        context.db,
        username,
        actor=_actor(admin),
        now=context.clock(),
        client_address=client_address(request),
    )
    return UserView.of(done.user)


@router.post("/users/{username}/enable", response_model=UserView)
def enable(username: str, request: Request, context: Context, admin: Admin) -> UserView:
    """Let a disabled account sign in again."""
    done = users.enable_user(
        context.db,
        username,
        actor=_actor(admin),
        now=context.clock(),
        client_address=client_address(request),
    )
    return UserView.of(done.user)


@router.post("/users/{username}/password-reset", response_model=UserAdded)
def password_reset(username: str, request: Request, context: Context, admin: Admin) -> UserAdded:
    """A new one-time password (shown once) to be replaced at the next sign-in; the
    user's sessions end now."""
    reset = users.reset_password(
        context.db,
        username,
        actor=_actor(admin),
        now=context.clock(),
        client_address=client_address(request),
    )
    return UserAdded(user=UserView.of(reset.user), initial_password=reset.password)


@router.get("/users/{username}/devices", response_model=list[DeviceView])
def user_devices(username: str, context: Context, admin: Admin) -> list[DeviceView]:
    """The user's devices and passkeys, revoked ones included (a view: revoking is for
    the signer or the bridge's administrator)."""
    return [DeviceView.of(d) for d in listings.list_user_devices(context.db, username)]


@router.get("/integration-clients", response_model=list[ClientView])
def get_clients(context: Context, admin: Admin) -> list[ClientView]:
    """Every integration client, oldest first, without secrets."""
    return [ClientView.of(c) for c in clients.list_clients(context.db)]


@router.post("/integration-clients", response_model=ClientAdded, status_code=201)
def post_client(body: ClientBody, request: Request, context: Context, admin: Admin) -> ClientAdded:
    """A new integration client; its API key and callback secret are shown once."""
    issued = clients.add_client(
        context.db,
        context.box,
        body.name,
        actor=_actor(admin),
        now=context.clock(),
        scopes=body.scopes,
        callback_secret=body.callback_secret,
        client_address=client_address(request),
    )
    assert issued.api_key is not None
    return ClientAdded(
        client=ClientView.of(issued.client),
        api_key=issued.api_key,
        callback_secret=issued.callback_secret,
    )


@router.post("/integration-clients/{client_id}/key-rotation", response_model=ClientKey)
def key_rotation(client_id: str, request: Request, context: Context, admin: Admin) -> ClientKey:
    """A new API key (shown once); the old one stops working at once."""
    issued = clients.rotate_key(
        context.db,
        client_id,
        actor=_actor(admin),
        now=context.clock(),
        client_address=client_address(request),
    )
    assert issued.api_key is not None
    return ClientKey(client=ClientView.of(issued.client), api_key=issued.api_key)


@router.post(
    "/integration-clients/{client_id}/callback-secret-rotation", response_model=ClientSecret
)
def callback_secret_rotation(
    client_id: str, request: Request, context: Context, admin: Admin
) -> ClientSecret:
    """A new callback secret (shown once): callbacks are signed with it from now on."""
    issued = clients.rotate_callback_secret(
        context.db,
        context.box,
        client_id,
        actor=_actor(admin),
        now=context.clock(),
        client_address=client_address(request),
    )
    assert issued.callback_secret is not None
    return ClientSecret(client=ClientView.of(issued.client), callback_secret=issued.callback_secret)


@router.post("/integration-clients/{client_id}/revocation", response_model=ClientView)
def client_revocation(
    client_id: str, request: Request, context: Context, admin: Admin
) -> ClientView:
    """Revoke the client: its key answers ``unauthenticated`` at once. Again: nothing
    changes."""
    done = clients.revoke_client(
        context.db,
        client_id,
        actor=_actor(admin),
        now=context.clock(),
        client_address=client_address(request),
    )
    return ClientView.of(done.client)


@router.get("/credentials", response_model=list[CredentialView])
def get_credentials(context: Context, admin: Admin) -> list[CredentialView]:
    """Every registered credential with who signs with it, revoked ones included."""
    return [CredentialView.of(c) for c in listings.list_credentials(context.db)]


def _registry(context: Context) -> SignerRegistry | None:
    """The in-process bridge's signer records (to unbind a revoked key), else None."""
    settings = context.settings
    if not settings.in_process_bridge:
        return None
    return local_registry(settings, InstallationKeys.load(settings.secrets_dir))


@router.post("/credentials/{credential_id}/revocation", response_model=CredentialView)
def credential_revocation(
    credential_id: str, request: Request, context: Context, admin: Admin
) -> CredentialView:
    """Stop using the credential at once: its pending requests fail with
    ``certificate_revoked``; with the in-process bridge, the signer is unbound from the
    key. Again: nothing changes."""
    revoke_credential(
        context.db,
        credential_id,
        actor=_actor(admin),
        now=context.clock(),
        registry=_registry(context),
        client_address=client_address(request),
    )
    found = [c for c in listings.list_credentials(context.db) if c.id == credential_id]
    return CredentialView.of(found[0])


def _credential(context: Context, credential_id: str) -> CredentialView:
    found = [c for c in listings.list_credentials(context.db) if c.id == credential_id]
    if not found:
        raise NotFound(f"no credential {credential_id}")
    return CredentialView.of(found[0])


@router.get("/tokens", response_model=list[TokenView])
def get_tokens(context: Context, admin: Admin) -> list[TokenView]:
    """The tokens the bridge sees (and those registered credentials need but that are
    not plugged in, ``removed``), the keys and certificates on each, and the live
    credentials registered for each key (none: a key that nobody signs with yet)."""
    return [TokenView.of(t) for t in tokens.token_inventory(context.db, context.bridge)]


@router.post("/credentials", response_model=CredentialView, status_code=201)
def post_credential(
    body: CredentialBody, request: Request, context: Context, admin: Admin
) -> CredentialView:
    """Register a key found on a token as ``username``'s credential (the newest is used
    for new requests; for a renewal, register the new key, then revoke the old
    credential). A certificate naming someone else answers 409
    ``certificate_holder_mismatch`` unless ``confirm_holder`` repeats its name."""
    registered = register_credential(
        context.db,
        context.bridge,
        body.username,
        body.token_serial,
        bytes.fromhex(body.key_id),
        mechanism=SignatureMechanism(body.mechanism) if body.mechanism else None,
        pin_policy=body.pin_policy,
        now=context.clock(),
        registry=_registry(context),
        organisation=body.organisation,
        confirm_holder=body.confirm_holder,
        actor=_actor(admin),
        client_address=client_address(request),
    )
    if context.settings.in_process_bridge and registered.chain_pem:
        add_ca_certificates(context.settings, registered.chain_pem)
    return _credential(context, registered.id)


@router.put("/credentials/{credential_id}/pin-policy", response_model=CredentialView)
def put_pin_policy(
    credential_id: str, body: PinPolicyBody, request: Request, context: Context, admin: Admin
) -> CredentialView:
    """Whether the bridge keeps the token's PIN (``stored``) or the signer types it with
    each approval (``signer``). The same policy again changes nothing."""
    tokens.set_pin_policy(
        context.db,
        credential_id,
        body.pin_policy,
        actor=_actor(admin),
        now=context.clock(),
        client_address=client_address(request),
    )
    return _credential(context, credential_id)


@router.put("/organisations/{name}/seal", response_model=SealView)
def put_seal(
    name: str,
    image: Annotated[UploadFile, File(description="PNG, the seal on a transparent background")],
    diameter_mm: Annotated[float, Form(description="the seal's real diameter, mm")],
    request: Request,
    context: Context,
    admin: Admin,
) -> SealView:
    """Keep the image as the organisation's seal, drawn ``diameter_mm`` across (20 to
    60) on its documents from now on. A PNG of at most 2 MB with a transparent
    background, else ``parameter_invalid``."""
    data = image.file.read(MAX_IMAGE_BYTES + 1)
    digest = set_seal(
        context.db,
        name,
        data,
        diameter_mm,
        now=context.clock(),
        actor=_actor(admin),
        client_address=client_address(request),
    )
    return SealView(organisation=name, image_sha256=digest, diameter_mm=diameter_mm)


@router.post("/organisations/{name}/handover", response_model=HandoverView)
def post_handover(
    name: str, body: HandoverBody, request: Request, context: Context, admin: Admin
) -> HandoverView:
    """Hand the organisation's token to ``to``, one of its clerks, under the written
    ``permission`` (kept in the audit log). Its pending seals wait for the new keeper,
    who is notified; the old one can no longer sign with it."""
    done = hand_over(
        context.db,
        name,
        body.to,
        body.permission,
        now=context.clock(),
        registry=_registry(context),
        actor=_actor(admin),
        client_address=client_address(request),
    )
    for request_id in done.readdressed:
        for notifier in context.submissions.notifiers:
            notifier.signing_request_created(done.keeper_id, request_id)
    return HandoverView(
        organisation=name, previous=done.previous, keeper=done.keeper, readdressed=done.readdressed
    )


@router.get("/organisations", response_model=list[OrganisationView])
def get_organisations(context: Context, admin: Admin) -> list[OrganisationView]:
    """Every organisation with its seal image (kept or not) and the clerk keeping its key."""
    return [OrganisationView.of(o) for o in listings.list_organisations(context.db)]


@router.get("/audit", response_model=AuditPageView)
def get_audit(
    context: Context,
    admin: Admin,
    actor: Annotated[str | None, Query(max_length=120)] = None,
    action: Annotated[str | None, Query(max_length=64, description="a prefix")] = None,
    request_id: Annotated[str | None, Query(max_length=36)] = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
) -> AuditPageView:
    """Audit entries, newest first, ``limit`` a page (at most 200), filtered by actor
    (exact), action (prefix), signing request, and time (``since`` inclusive, ``until``
    exclusive; with a zone); ``next_cursor`` gives the next page."""
    where = AuditFilter(actor, action, request_id, since, until)
    page = search_audit(context.db, where, cursor=cursor, limit=limit)
    return AuditPageView(
        items=[AuditEntryView.of(e) for e in page.items], next_cursor=page.next_cursor
    )
