"""The schema, as SQLAlchemy Core tables; created with ``metadata.create_all`` on first use.

    accounts        users and robots (robots have no password_hash)
    groups          group names
    memberships     account <-> group
    access_tokens   personal access tokens and robot tokens: only a SHA-256 of the secret
    refresh_tokens  OAuth2 refresh tokens: only a SHA-256 of the secret; subject is a name,
                    not a foreign key, so accounts of other backends (htpasswd) can hold them;
                    binding ties one to the credential it was issued for (htpasswd line)
    audit_events    who did what, from where, with what outcome; never a secret
    access_rules    access rules added from the CLI, in the config's ``access:`` syntax (JSON),
                    applied after the config file's rules in ``position`` order
    access_rule_revision  one row, bumped with every rule change: servers poll it cheaply
    external_identities  per federated account (source ldap): its entry in the directory
                    (DN), its groups there (full DNs) and when the directory last said so
    login_attempts  failed-login counters per throttling key, shared by all workers; times
                    in epoch seconds (see metadata/attempts.py)
    web_sessions    the web UI's sign-in sessions: only a SHA-256 of the cookie's secret;
                    idle and absolute expiry; binding as refresh_tokens'
    twofactor       per account with a second factor: its TOTP secret, whether enrolment
                    is confirmed, the time step of the last accepted code (no replays)
    recovery_codes  a 2FA account's one-time recovery codes: only a SHA-256 of each
    pending_signins web sign-ins waiting for their second factor (or a forced enrolment):
                    only a SHA-256 of the browser's cookie; short-lived, single-use
    passkeys        WebAuthn credentials registered as second factors: public key and
                    signature counter (no secret)
    webauthn_challenges  outstanding WebAuthn challenges (registration, sign-in): single
                    use, deleted when taken, five minutes
    index_repositories, index_manifests, index_tags, index_blobs
                    the repository index: what storage holds, summarized for listing and
                    search (see metadata/repoindex.py); rebuildable from storage
    gc_runs         one row per ``hatchway gc`` run (another process): what /metrics reports
    device_codes    OAuth2 device authorization requests (RFC 8628, ``hatchway login --sso``):
                    only SHA-256s of the device and user codes; who asked, who decided
    mirror_tag_checks, mirror_pulls
                    the pull-through mirror's tag checks and last pulls (ttl)
    oidc_logins, oidc_tokens
                    identity.oidc: sign-ins in progress (hashed state), and the provider's
                    tokens of each OIDC account (encrypted) for the 15-minute re-checks

Timestamps are stored as naive UTC (SQLite keeps no zone) and read back as aware UTC.
A column added to an existing table must be nullable: ``Database.create_schema`` adds it
to databases made before it (``create_all`` only makes missing tables).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite drops the zone otherwise)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime; use datetime.now(UTC)")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC)


metadata = MetaData()

accounts = Table(
    "accounts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),
    Column("password_hash", String(255), nullable=True),
    Column("admin", Boolean, nullable=False, default=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("password_changed_at", UTCDateTime, nullable=True),
    # Where the account signs in: NULL for the local database, "ldap" for a directory
    # account made at its first login (no password here; see external_identities).
    Column("source", String(32), nullable=True),
    # Set while an admin has disabled the account: no password, token or session works.
    Column("disabled_at", UTCDateTime, nullable=True),
)

groups = Table(
    "groups",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
)

memberships = Table(
    "memberships",
    metadata,
    Column("account_id", Integer, ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
    Column("group_id", Integer, ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True),
    Index("ix_memberships_group", "group_id"),
)

access_tokens = Table(
    "access_tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "account_id",
        Integer,
        ForeignKey("accounts.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("name", String(64), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("scopes", Text, nullable=False),  # space-separated, as Docker's scope parameter
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=True),
    Column("revoked_at", UTCDateTime, nullable=True),
    Column("last_used_at", UTCDateTime, nullable=True),
    Column("last_used_addr", String(64), nullable=True),
    # A name is unique among an account's live tokens; revoked ones keep theirs for audit.
    Index(
        "ux_access_tokens_live_name",
        "account_id",
        "name",
        unique=True,
        sqlite_where=text("revoked_at IS NULL"),
        postgresql_where=text("revoked_at IS NULL"),
    ),
)

refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("subject", String(128), nullable=False, index=True),
    Column("backend", String(32), nullable=False),
    Column("client_id", String(128), nullable=False),
    # Set when the login used a PAT: the refresh token can never do more than that PAT.
    Column(
        "access_token_id",
        Integer,
        ForeignKey("access_tokens.id", ondelete="CASCADE"),
        nullable=True,
        index=True,
    ),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=True),
    Column("revoked_at", UTCDateTime, nullable=True),
    Column("last_used_at", UTCDateTime, nullable=True),
    Column("last_used_addr", String(64), nullable=True),
    # HMAC (keyed by the token's own secret) of the credential it was issued for, for
    # backends whose credentials change outside the store (an htpasswd line).
    Column("binding", String(64), nullable=True),
    Column("created_addr", String(64), nullable=True),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("time", UTCDateTime, nullable=False, index=True),
    Column("event", String(64), nullable=False),
    Column("account", String(128), nullable=True, index=True),
    Column("outcome", String(16), nullable=False),
    Column("client_addr", String(64), nullable=True),
    Column("user_agent", String(512), nullable=True),
    Column("repository", String(512), nullable=True, index=True),
    Column("scopes_requested", Text, nullable=False, default=""),
    Column("scopes_granted", Text, nullable=False, default=""),
    Column("detail", JSON, nullable=False),
)

access_rules = Table(
    "access_rules",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("position", Integer, nullable=False, index=True),
    Column("rule", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("comment", String(500), nullable=True),
    sqlite_autoincrement=True,  # ids name rules in logs and the audit trail: never reused
)

access_rule_revision = Table(
    "access_rule_revision",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("revision", Integer, nullable=False),
)

login_attempts = Table(
    "login_attempts",
    metadata,
    Column("key", String(400), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("last_failure", Float, nullable=False),
    Column("blocked_until", Float, nullable=False, index=True),
    Column("last_success", Float, nullable=True),
)

# The repository index (metadata/repoindex.py): derived from storage, rebuilt by
# ``hatchway index rebuild``. Names and digests are strings; sizes in bytes.
index_repositories = Table(
    "index_repositories",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("tags", Integer, nullable=False),
    Column("manifests", Integer, nullable=False),
    Column("size", BigInteger, nullable=False),  # distinct blobs, each counted once
    Column("last_push", UTCDateTime, nullable=True),
)

index_manifests = Table(
    "index_manifests",
    metadata,
    Column("repository", String(255), primary_key=True),
    Column("digest", String(150), primary_key=True),
    Column("media_type", String(255), nullable=False),
    Column("artifact_type", String(255), nullable=True),
    Column("subject", String(150), nullable=True),
    Column("size", BigInteger, nullable=False),  # config + layers; an index: its platforms'
    Column("created", UTCDateTime, nullable=True),  # from the image config
    Column("platforms", JSON, nullable=True),  # an index: [{digest, platform, size, ...}]
    Column("annotations", JSON, nullable=True),
    Column("pushed_at", UTCDateTime, nullable=True),
    Column("pushed_by", String(128), nullable=True),
    Column("pushed_credential", String(64), nullable=True),
    Index("ix_index_manifests_subject", "repository", "subject"),
)

index_tags = Table(
    "index_tags",
    metadata,
    Column("repository", String(255), primary_key=True),
    Column("tag", String(128), primary_key=True),
    Column("digest", String(150), nullable=False),
    Column("pushed_at", UTCDateTime, nullable=True),
    Column("pushed_by", String(128), nullable=True),
    Column("pushed_credential", String(64), nullable=True),
    Index("ix_index_tags_digest", "repository", "digest"),
)

index_blobs = Table(
    "index_blobs",
    metadata,
    Column("repository", String(255), primary_key=True),
    Column("manifest", String(150), primary_key=True),
    Column("digest", String(150), primary_key=True),
    Column("size", BigInteger, nullable=False),
)

external_identities = Table(
    "external_identities",
    metadata,
    Column("account_id", Integer, ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
    Column("source", String(32), nullable=False),
    # The directory's name for the account (a DN); one account per entry.
    Column("external_id", String(1024), nullable=False),
    Column("groups", JSON, nullable=False),
    Column("checked_at", UTCDateTime, nullable=False),
    # Set while the directory says the account is gone or disabled.
    Column("disabled_at", UTCDateTime, nullable=True),
    Index("ux_external_identities_id", "source", "external_id", unique=True),
)

gc_runs = Table(
    "gc_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("finished_at", Float, nullable=False),
    Column("duration", Float, nullable=False),
    Column("outcome", String(20), nullable=False),
    Column("dry_run", Boolean, nullable=False),
    Column("blobs_deleted", Integer, nullable=False),
    Column("bytes_freed", BigInteger, nullable=False),
)

web_sessions = Table(
    "web_sessions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("session_hash", String(64), nullable=False, unique=True),
    Column("subject", String(128), nullable=False, index=True),
    Column("backend", String(32), nullable=False),
    Column("binding", String(64), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime, nullable=True),
    Column("created_addr", String(64), nullable=True),
    Column("last_addr", String(64), nullable=True),
    Column("user_agent", String(512), nullable=True),
    sqlite_autoincrement=True,  # ids name sessions to their owner: never reused
)

twofactor = Table(
    "twofactor",
    metadata,
    Column("account_id", Integer, ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
    Column("method", String(16), nullable=False),  # "totp"
    # The TOTP secret (base32): it must be read to check a code (see README).
    Column("secret", String(512), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("confirmed_at", UTCDateTime, nullable=True),  # null: enrolment not yet confirmed
    # The time step of the last accepted code: a code for it or earlier is a replay.
    Column("last_step", BigInteger, nullable=True),
)

recovery_codes = Table(
    "recovery_codes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", Integer, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("code_hash", String(64), nullable=False),  # SHA-256 hex; never the code
    Column("used_at", UTCDateTime, nullable=True),
    Index("ix_recovery_codes_account", "account_id"),
)

# Token signing keys shared by replicas (auth/tokens/dbkeys.py), used when the database is
# PostgreSQL: name is keyfile.file_name (activation time + kid), pem the key and its
# certificate (keyfile.encode). Without it, keys are files in the local directory.
token_signing_keys = Table(
    "token_signing_keys",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("pem", Text, nullable=False),
)

# OAuth2 device authorization grant (auth/device.py, metadata/devicecodes.py): one row per
# request, pending until a signed-in person approves or denies it, then exchanged once.
device_codes = Table(
    "device_codes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("device_hash", String(64), nullable=False, unique=True),  # SHA-256 hex
    Column("user_hash", String(64), nullable=False, unique=True),  # SHA-256 hex
    Column("client_id", String(128), nullable=False),
    Column("scope", String(1024), nullable=False),
    Column("state", String(16), nullable=False),  # pending, approved, denied, used
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("interval", Integer, nullable=False),  # seconds; grows with each slow_down
    Column("polled_at", Float, nullable=True),  # epoch seconds of the last poll
    Column("created_addr", String(64), nullable=True),
    Column("user_agent", String(512), nullable=True),
    Column("subject", String(128), nullable=True),  # who approved (or denied)
    Column("backend", String(32), nullable=True),
    Column("decided_at", UTCDateTime, nullable=True),
    sqlite_autoincrement=True,
)

# The pull-through mirror (metadata/mirrorstate.py), shared by workers and replicas: when
# each mirrored tag was last checked upstream (and the digest it had), and when each cached
# manifest or blob was last pulled (ttl expiry). Times in epoch seconds.
mirror_tag_checks = Table(
    "mirror_tag_checks",
    metadata,
    Column("repository", String(255), primary_key=True),
    Column("tag", String(128), primary_key=True),
    Column("digest", String(160), nullable=False),
    Column("checked_at", Float, nullable=False),
)

mirror_pulls = Table(
    "mirror_pulls",
    metadata,
    Column("repository", String(255), primary_key=True),
    Column("digest", String(160), primary_key=True),
    Column("kind", String(8), nullable=False),  # "manifest" | "blob"
    Column("pulled_at", Float, nullable=False),
    Index("ix_mirror_pulls_pulled_at", "pulled_at"),
)

# identity.oidc (metadata/oidc.py): sign-ins in progress, keyed by a SHA-256 of ``state``,
# bound to the browser that started them (a SHA-256 of its cookie), single use, short-lived.
oidc_logins = Table(
    "oidc_logins",
    metadata,
    Column("state_hash", String(64), primary_key=True),
    Column("browser_hash", String(64), nullable=False),
    Column("nonce", String(128), nullable=False),
    Column("verifier", String(128), nullable=False),  # PKCE code_verifier
    Column("next", String(2048), nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
)

# identity.oidc: per federated account (source oidc), the provider's tokens for the
# re-checks, encrypted (Fernet, key derived from the client secret); who holds the check
# now (checking_until), so one worker or replica at a time uses a rotating refresh token.
oidc_tokens = Table(
    "oidc_tokens",
    metadata,
    Column("account_id", Integer, ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
    Column("refresh_token", Text, nullable=True),
    Column("access_token", Text, nullable=True),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("checking_until", UTCDateTime, nullable=True),
)

# A web sign-in whose password (or OIDC) step passed and whose second factor has not yet
# been given (auth/pendingsignin.py). No session exists until it has; single-use.
pending_signins = Table(
    "pending_signins",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("secret_hash", String(64), nullable=False, unique=True),  # SHA-256 of the cookie
    Column("subject", String(128), nullable=False),
    Column("backend", String(32), nullable=False),
    Column("purpose", String(16), nullable=False),  # "verify" | "enrol"
    Column("via", String(16), nullable=False),  # "ui", "oidc": the first step, for the audit
    Column("target", String(1024), nullable=False),  # where to go once signed in
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False, index=True),
    Column("used_at", UTCDateTime, nullable=True),
)

# WebAuthn credentials (passkeys, security keys) as second factors (auth/passkeys.py).
passkeys = Table(
    "passkeys",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", Integer, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(64), nullable=False),
    Column("credential_id", String(1400), nullable=False, unique=True),  # base64url, <= 1023 B
    Column("public_key", Text, nullable=False),  # base64url of the COSE key: not a secret
    Column("sign_count", BigInteger, nullable=False),
    Column("transports", String(200), nullable=True),  # comma-separated, as the browser said
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_used_at", UTCDateTime, nullable=True),
    Index("ix_passkeys_account", "account_id"),
    sqlite_autoincrement=True,  # ids name passkeys to their owner: never reused
)

# Outstanding WebAuthn challenges; taken (deleted) by the one response that answers them.
webauthn_challenges = Table(
    "webauthn_challenges",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("challenge", String(128), nullable=False, unique=True),  # base64url, 32 bytes
    Column("subject", String(128), nullable=False),
    Column("purpose", String(16), nullable=False),  # "register" | "signin"
    Column("expires_at", UTCDateTime, nullable=False, index=True),
)

__all__ = [
    "UTCDateTime",
    "access_rule_revision",
    "access_rules",
    "access_tokens",
    "accounts",
    "audit_events",
    "device_codes",
    "external_identities",
    "gc_runs",
    "groups",
    "index_blobs",
    "index_manifests",
    "index_repositories",
    "index_tags",
    "login_attempts",
    "memberships",
    "metadata",
    "mirror_pulls",
    "mirror_tag_checks",
    "oidc_logins",
    "oidc_tokens",
    "passkeys",
    "pending_signins",
    "recovery_codes",
    "refresh_tokens",
    "twofactor",
    "token_signing_keys",
    "web_sessions",
    "webauthn_challenges",
]
