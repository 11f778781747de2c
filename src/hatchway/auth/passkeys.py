"""Passkeys (WebAuthn) as a second factor, with the ``webauthn`` package: it builds the
options and verifies attestations and assertions (signature, RP ID hash, origin,
challenge, user presence, signature counter); hatchway keeps the state.

Challenges are made here (32 random bytes), stored server-side for five minutes and taken
(deleted) by the one response that answers them, so a response cannot be replayed. The RP
ID is the host the browser used (through a trusted proxy, the forwarded one), without its
port, and the expected origin is that scheme and host: a passkey made for one name of the
registry works at that name only. Attestation is not asked for (``none``): any
authenticator the browser offers may be registered.

An account with a passkey has two-factor authentication on (``metadata.twofactor``'s
``is_active``): its password is refused wherever no second factor can be asked. Turning
2FA off or an admin reset removes its passkeys too. No web imports; synchronous: call it
in a thread.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import bytes_to_base64url
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from hatchway.auth.identity.base import ClientInfo
from hatchway.auth.selfservice import Caller
from hatchway.auth.twofactor import Conflict, TwoFactorService, WrongCode
from hatchway.metadata import Outcome
from hatchway.metadata.passkeys import Passkey
from hatchway.metadata.records import ConflictError, utcnow

RP_NAME = "hatchway"
CHALLENGE_TTL = timedelta(minutes=5)
TIMEOUT_MS = 120_000
MAX_NAME = 64
_NAME = re.compile(r"[^\x00-\x1f\x7f]{1,64}")
_TRANSPORTS = {t.value for t in AuthenticatorTransport}


@dataclass(frozen=True, slots=True)
class RelyingParty:
    """Where the browser is: the RP ID (a host name) and the origin it must report."""

    id: str
    origin: str


def _b64url_decode(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def _client_challenge(credential: dict[str, Any]) -> str:
    """The challenge the browser signed (from clientDataJSON), to find our copy."""
    try:
        data = json.loads(_b64url_decode(credential["response"]["clientDataJSON"]))
        challenge = data["challenge"]
    except (KeyError, TypeError, ValueError):
        raise WrongCode("the passkey's answer is malformed") from None
    if not isinstance(challenge, str) or len(challenge) > 128:
        raise WrongCode("the passkey's answer is malformed")
    return challenge


def _parse(credential: str) -> dict[str, Any]:
    if len(credential) > 64 * 1024:
        raise WrongCode("the passkey's answer is too large")
    try:
        parsed = json.loads(credential)
    except ValueError:
        raise WrongCode("the passkey's answer is malformed") from None
    if not isinstance(parsed, dict):
        raise WrongCode("the passkey's answer is malformed")
    return parsed


def user_handle(name: str) -> bytes:
    """A stable WebAuthn user handle that is not the account name itself."""
    return hashlib.sha256(b"hatchway webauthn user\0" + name.encode()).digest()


class PasskeyService:
    def __init__(self, twofactor: TwoFactorService) -> None:
        self.twofactor = twofactor
        self.store = twofactor.store

    def _own(self, caller: Caller, event: str, client: ClientInfo) -> None:
        """Only the account itself, signed in with its password (not a token)."""
        self.twofactor.own(caller, event, client)

    def list(self, name: str) -> list[Passkey]:
        return self.store.passkeys.list(name)

    def _challenge(self, subject: str, purpose: str) -> bytes:
        raw = secrets.token_bytes(32)
        self.store.passkeys.add_challenge(
            bytes_to_base64url(raw), subject, purpose, utcnow() + CHALLENGE_TTL
        )
        return raw

    def _take(self, credential: dict[str, Any], subject: str, purpose: str) -> bytes:
        challenge = _client_challenge(credential)
        if not self.store.passkeys.take_challenge(challenge, subject, purpose):
            raise WrongCode("the passkey's answer is stale or was already used; try again")
        return _b64url_decode(challenge)

    # -- registration ------------------------------------------------------------------

    def registration_options(self, caller: Caller, rp: RelyingParty, client: ClientInfo) -> str:
        """PublicKeyCredentialCreationOptions as JSON (base64url binary fields)."""
        self._own(caller, "twofactor.passkey.add", client)
        existing = [
            PublicKeyCredentialDescriptor(id=_b64url_decode(p.credential_id))
            for p in self.store.passkeys.list(caller.name)
        ]
        options = generate_registration_options(
            rp_id=rp.id,
            rp_name=RP_NAME,
            user_name=caller.name,
            user_id=user_handle(caller.name),
            user_display_name=caller.name,
            challenge=self._challenge(caller.name, "register"),
            timeout=TIMEOUT_MS,
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.PREFERRED,
                user_verification=UserVerificationRequirement.PREFERRED,
            ),
            exclude_credentials=existing,
        )
        return str(options_to_json(options))

    def register(
        self, caller: Caller, name: str, credential: str, rp: RelyingParty, client: ClientInfo
    ) -> Passkey:
        """Verify the browser's answer to :meth:`registration_options` and keep the
        passkey under ``name``. WrongCode: not verified; Conflict: the name is taken."""
        self._own(caller, "twofactor.passkey.add", client)
        name = name.strip()
        if not _NAME.fullmatch(name):
            raise Conflict(f"give the passkey a name of 1 to {MAX_NAME} characters")
        parsed = _parse(credential)
        expected = self._take(parsed, caller.name, "register")
        try:
            verified = verify_registration_response(
                credential=parsed,
                expected_challenge=expected,
                expected_rp_id=rp.id,
                expected_origin=rp.origin,
            )
        except WebAuthnException as exc:
            self.twofactor.record(
                "twofactor.passkey.add",
                caller.name,
                client,
                Outcome.FAILURE,
                reason=str(exc)[:200],
            )
            raise WrongCode("the passkey could not be verified") from None
        transports = tuple(
            t
            for t in (parsed.get("response", {}).get("transports") or [])
            if isinstance(t, str) and t in _TRANSPORTS
        )
        had_2fa = self.store.twofactor.is_active(caller.name)
        try:
            made = self.store.passkeys.add(
                caller.name,
                name=name,
                credential_id=bytes_to_base64url(verified.credential_id),
                public_key=bytes_to_base64url(verified.credential_public_key),
                sign_count=verified.sign_count,
                transports=transports,
            )
        except ConflictError as exc:
            raise Conflict(str(exc)) from None
        self.twofactor.changed(caller.name)
        revoked = 0 if had_2fa else self.store.refresh_tokens.revoke_subject(caller.name)
        self.twofactor.record(
            "twofactor.passkey.add",
            caller.name,
            client,
            passkey=made.id,
            name=name,
            refresh_revoked=revoked,
        )
        return made

    def remove(self, caller: Caller, passkey_id: int, client: ClientInfo) -> bool:
        self._own(caller, "twofactor.passkey.remove", client)
        done = self.store.passkeys.remove(caller.name, passkey_id)
        if done:
            self.twofactor.changed(caller.name)
            self.twofactor.record(
                "twofactor.passkey.remove", caller.name, client, passkey=passkey_id
            )
        return done

    # -- sign-in -----------------------------------------------------------------------

    def authentication_options(self, name: str, rp: RelyingParty) -> str:
        """PublicKeyCredentialRequestOptions as JSON for this account's passkeys."""
        allowed = [
            PublicKeyCredentialDescriptor(
                id=_b64url_decode(p.credential_id),
                transports=[AuthenticatorTransport(t) for t in p.transports] or None,
            )
            for p in self.store.passkeys.list(name)
        ]
        if not allowed:
            raise Conflict("this account has no passkey")
        options = generate_authentication_options(
            rp_id=rp.id,
            challenge=self._challenge(name, "signin"),
            timeout=TIMEOUT_MS,
            allow_credentials=allowed,
            user_verification=UserVerificationRequirement.PREFERRED,
        )
        return str(options_to_json(options))

    def verify(self, name: str, credential: str, rp: RelyingParty, client: ClientInfo) -> Passkey:
        """Check the browser's answer to :meth:`authentication_options` (throttled as
        codes are; WrongCode when it fails, audited)."""
        parsed = _parse(credential)

        def check() -> int | None:
            try:
                return self._verify(name, parsed, rp)
            except WrongCode:
                return None

        matched = self.twofactor.throttled(name, client, check)
        if matched is None:
            self.twofactor.record(
                "twofactor.verify", name, client, Outcome.FAILURE, method="passkey"
            )
            raise WrongCode("the passkey was not accepted")
        return next(p for p in self.store.passkeys.list(name) if p.id == matched)

    def _verify(self, name: str, parsed: dict[str, Any], rp: RelyingParty) -> int:
        credential_id = parsed.get("id")
        if not isinstance(credential_id, str):
            raise WrongCode("the passkey's answer is malformed")
        passkey = self.store.passkeys.find(name, credential_id)
        if passkey is None:
            raise WrongCode("not a passkey of this account")
        expected = self._take(parsed, name, "signin")
        try:
            verified = verify_authentication_response(
                credential=parsed,
                expected_challenge=expected,
                expected_rp_id=rp.id,
                expected_origin=rp.origin,
                credential_public_key=_b64url_decode(passkey.public_key),
                credential_current_sign_count=passkey.sign_count,
            )
        except WebAuthnException:
            raise WrongCode("the passkey could not be verified") from None
        if not self.store.passkeys.used(passkey.id, passkey.sign_count, verified.new_sign_count):
            raise WrongCode("the passkey's counter went backwards (a copied authenticator?)")
        return passkey.id
