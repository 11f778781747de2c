"""Accounts from an OpenID Connect provider (``identity.oidc``): single sign-on for the UI.

The browser side (authorization code flow with PKCE, ``state`` and ``nonce``) is in
``http/ui/pages/oidc.py``; the provider's protocol in :mod:`oidcclient`. Here: what a
verified sign-in means for hatchway's accounts, and the later re-checks.

- The account is found by the provider's ``sub`` (``external_identities``, source
  ``oidc``). The first sign-in makes a federated account (no password here) named by the
  ``usernameclaim`` claim, which must fit the account-name grammar. A name that already
  belongs to another account (local, LDAP, htpasswd, another subject) is refused with a
  clear message: never merged, so the provider cannot take over a local account.
- Groups come from ``groupsclaim`` and are stored as LDAP's are (``external_identities``):
  access rules name them with ``group:``; admin status follows ``admingroups`` at every
  sign-in and every re-check, both ways.
- The provider's refresh token (``offline_access``, asked for where offered) or else its
  access token is kept encrypted (Fernet, key derived from the client secret by HKDF), in
  the database only. When the account's hatchway tokens (PATs, refresh tokens) or UI
  session are used and the last check is 15 minutes old, the provider is asked again (the
  hook LDAP uses: ``LocalAuthenticator.federated`` and ``resolve``): a refused refresh
  (``invalid_grant``), a refused userinfo or a user the provider no longer finds disables
  the link, and the account's credentials stop until its next sign-in. Not on every
  request: in between, the stored state answers. One worker (or replica) at a time checks
  an account (a lease in ``oidc_tokens``), so a rotating refresh token is used once.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from hatchway.auth.identity.base import ClientInfo, IdentityUnavailable
from hatchway.auth.identity.linked import LinkedSource
from hatchway.auth.identity.oidcclient import Provider, ProviderUnavailable, Tokens
from hatchway.auth.principal import Principal
from hatchway.metadata import Account, ConflictError, MetadataStore
from hatchway.metadata.external import ExternalIdentity
from hatchway.metadata.oidc import OidcStore
from hatchway.metadata.records import ACCOUNT_NAME_RE, AuditEvent, Outcome, utcnow

log = logging.getLogger("hatchway.auth.oidc")

OIDC_BACKEND = "oidc"
REFRESH_INTERVAL = timedelta(minutes=15)
CHECK_LEASE = timedelta(seconds=60)
_MAX_GROUPS = 1000
_MAX_GROUP = 1024


class SignInRefused(Exception):
    """The provider signed the person in, but hatchway will not: the message says why,
    in words for the person (no secret)."""


def token_key(client_secret: str) -> Fernet:
    """The key the provider's tokens are sealed with at rest (HKDF of the client secret)."""
    key = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=b"hatchway identity.oidc",
        info=b"provider tokens at rest",
    ).derive(client_secret.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def claim_groups(claims: Mapping[str, Any], name: str | None) -> frozenset[str]:
    """The groups claim as a set of strings (a list, or one string); others ignored."""
    if name is None:
        return frozenset()
    value = claims.get(name)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return frozenset()
    groups = [g for g in value if isinstance(g, str) and g and len(g) <= _MAX_GROUP]
    return frozenset(groups[:_MAX_GROUPS])


class OidcAuthenticator(LinkedSource):
    backend = OIDC_BACKEND
    recheck_disabled = False  # off until the person signs in at the provider again

    def __init__(
        self,
        provider: Provider,
        client_secret: str,
        store: MetadataStore,
        *,
        reserved: Callable[[str], bool] | None = None,
        audit: Callable[[AuditEvent], None] | None = None,
        accounts: Callable[[str], Account | None] | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        super().__init__(
            store,
            admingroups=frozenset(provider.config.admingroups),
            refresh_interval=REFRESH_INTERVAL,
            audit=audit,
            accounts=accounts,
            clock=clock,
        )
        self.provider = provider
        self.config = provider.config
        self.tokens = OidcStore(store.db)
        self.reserved = reserved  # a name of another backend (htpasswd): not ours
        self._fernet = token_key(client_secret)

    @property
    def name(self) -> str:
        """The provider as the sign-in button names it."""
        return self.provider.name

    # -- the Authenticator protocol (no passwords here) -------------------------------

    def authenticate(self, username: str, secret: str, client: ClientInfo) -> Principal | None:
        return None  # OIDC accounts sign in at the provider, never with a password here

    def resolve(self, subject: str, token_id: str | None = None) -> Principal | None:
        """A UI session or refresh token of an OIDC account: as the provider has it now
        (asked again once the last check is 15 minutes old)."""
        if token_id is not None:
            return None  # logins with a PAT belong to the local backend
        link = self._link(subject)
        if link is None:
            return None
        return self.current_link(link)

    def credential_binding(self, subject: str) -> bytes | None:
        """Sessions and refresh tokens are bound to the provider's subject: a relinked
        account (another ``sub``) does not inherit them."""
        link = self._link(subject)
        if link is None or link.disabled:
            return None
        return ("oidc\0" + link.external_id).encode()

    def forget(self, name: str) -> None:
        self._forget(name)

    # -- the sign-in -------------------------------------------------------------------

    def sign_in(self, tokens: Tokens, client: ClientInfo) -> Principal:
        """The account for a verified sign-in: made the first time, updated each time.
        Raises :class:`SignInRefused` with a sentence for the person."""
        claims = tokens.claims
        subject = str(claims["sub"])
        groups = claim_groups(claims, self.config.groupsclaim)
        now = self._clock()
        link = self.store.external.find(OIDC_BACKEND, subject)
        if link is None:
            link = self._create(claims, subject, groups, client)
        else:
            account = self.store.accounts.get(link.account)
            if account is None or account.disabled:
                self._denied(link.account, client, "account disabled")
                raise SignInRefused(f"The hatchway account {link.account!r} is disabled.")
            self._update(link, groups, now, client)
        self._keep_tokens(link.account_id, tokens, now)
        fresh = self._link(link.account, cached=False)
        if fresh is None:  # deleted meanwhile
            raise SignInRefused("The account was deleted while signing in; try again.")
        return self._principal(fresh)

    def _create(
        self, claims: Mapping[str, Any], subject: str, groups: frozenset[str], client: ClientInfo
    ) -> ExternalIdentity:
        claim = self.config.usernameclaim
        name = claims.get(claim)
        if not isinstance(name, str) or not name:
            self._denied(None, client, f"no {claim} claim")
            raise SignInRefused(
                f"The provider did not send the {claim!r} claim that names hatchway accounts."
            )
        if not ACCOUNT_NAME_RE.fullmatch(name):
            self._denied(None, client, f"{claim} is not an account name")
            raise SignInRefused(
                f"The provider's {claim} {name[:64]!r} cannot be a hatchway account name "
                "(letters, digits and . _ @ + -, starting with a letter or digit, at most 128)."
            )
        taken = self.store.accounts.get(name) is not None or (
            self.reserved is not None and self.reserved(name)
        )
        admin = bool(groups & self.admingroups)
        if not taken:
            try:
                created = self.store.external.create(
                    name,
                    source=OIDC_BACKEND,
                    external_id=subject,
                    groups=groups,
                    admin=admin,
                    now=self._clock(),
                )
            except ConflictError:
                taken = True
        if taken:
            log.warning("OIDC user %r: an account of that name exists; not linked", name)
            self._denied(name, client, "the name is another account's")
            raise SignInRefused(
                f"An account named {name!r} already exists in hatchway and is not linked to "
                "this sign-in. Sign in with its password, or ask an administrator."
            )
        self.forget(name)
        log.info("created account %s for OIDC subject %s", name, subject)
        self._event("account.create", name, client, {"source": OIDC_BACKEND, "admin": admin})
        return created

    def _update(
        self,
        link: ExternalIdentity,
        groups: frozenset[str],
        now: datetime,
        client: ClientInfo | None,
    ) -> None:
        admin = bool(groups & self.admingroups)
        account = self.store.accounts.get(link.account)
        was_admin = account.admin if account is not None else False
        self.store.external.update(
            link.account_id, external_id=link.external_id, groups=groups, admin=admin, now=now
        )
        if admin != was_admin:
            log.info("OIDC account %s: admin %s (admingroups)", link.account, admin)
            self._event(
                "account.admin", link.account, client, {"admin": admin, "source": OIDC_BACKEND}
            )
        self.forget(link.account)

    # -- the provider's tokens, encrypted at rest --------------------------------------

    def _seal(self, value: str | None) -> str | None:
        return self._fernet.encrypt(value.encode()).decode() if value else None

    def _open(self, value: str | None) -> str | None:
        if not value:
            return None
        try:
            return self._fernet.decrypt(value.encode()).decode()
        except InvalidToken:
            # Sealed under another client secret: unusable; the next sign-in replaces it.
            log.warning("identity.oidc: a stored provider token cannot be decrypted")
            return None

    def _keep_tokens(self, account_id: int, tokens: Tokens, now: datetime) -> None:
        self.tokens.save_tokens(
            account_id, self._seal(tokens.refresh_token), self._seal(tokens.access_token), now
        )

    # -- the re-check ------------------------------------------------------------------

    def _recheck(self, link: ExternalIdentity) -> Principal | None:
        now = self._clock()
        if not self.tokens.claim_check(link.account_id, now, now + CHECK_LEASE):
            return self._principal(link)  # another worker asks the provider right now
        try:
            stored = self.tokens.tokens(link.account_id)
            refresh = self._open(stored.refresh_token) if stored is not None else None
            access = self._open(stored.access_token) if stored is not None else None
            try:
                answer = self.provider.check(link.external_id, refresh, access)
            except ProviderUnavailable as exc:
                raise IdentityUnavailable(f"the OpenID provider: {exc}") from None
        except BaseException:
            self.tokens.release_check(link.account_id)
            raise
        if answer is None:
            log.info("OIDC account %s: the provider no longer accepts the user", link.account)
            self.store.external.disable(link.account_id, self._clock())
            self.tokens.drop_tokens(link.account_id)
            self._event("account.disable", link.account, None, {"source": OIDC_BACKEND})
            self.forget(link.account)
            return None
        self._keep_tokens(link.account_id, answer, self._clock())
        groups = (
            claim_groups(answer.claims, self.config.groupsclaim)
            if self.config.groupsclaim is not None and self.config.groupsclaim in answer.claims
            else link.groups  # userinfo without the claim: groups as the sign-in said
        )
        self._update(link, groups, self._clock(), None)
        fresh = self._link(link.account, cached=False)
        return self._principal(fresh) if fresh is not None and not fresh.disabled else None

    # -- internals ---------------------------------------------------------------------

    def _denied(self, account: str | None, client: ClientInfo, reason: str) -> None:
        """A sign-in the provider allowed and hatchway refused, audited as a ``login``."""
        if self._audit is None:
            return
        self._audit(
            AuditEvent(
                "login",
                Outcome.DENIED,
                account,
                client.address,
                client.user_agent,
                detail={"via": "ui", "source": OIDC_BACKEND, "reason": reason},
            )
        )

    def probe(self) -> str | None:
        """Why the provider cannot be used now, or None."""
        try:
            self.provider.probe()
        except ProviderUnavailable as exc:
            return str(exc)
        return None

    def close(self) -> None:
        return None
