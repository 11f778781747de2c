"""Bodies of the two-factor endpoints (``/api/v1/me/twofactor...``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _Response(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TwoFactorState(_Response):
    enabled: bool = Field(description="A second factor is on: the password alone signs in nowhere.")
    pending: bool = Field(description="An enrolment was started and not yet confirmed.")
    method: Literal["totp"] | None = None
    recovery_codes_left: int
    required: bool = Field(description="identity.twofactor.required asks this account for one.")
    passkeys: int = Field(0, description="Passkeys (WebAuthn) registered as second factors.")


class TotpEnrolment(_Response):
    secret: str = Field(description="Base32 TOTP secret, for authenticator apps without a camera.")
    uri: str = Field(description="The otpauth:// URI (issuer hatchway), for a QR code.")


class TotpConfirm(_Request):
    code: str = Field(min_length=1, max_length=64, description="The app's current 6-digit code.")


class RecoveryCodes(_Response):
    recovery_codes: list[str] = Field(
        description="Ten single-use codes, shown only in this response; each stands in for a "
        "TOTP code once."
    )


class TwoFactorDisable(_Request):
    password: str = Field(min_length=1, max_length=1024)
    code: str = Field(
        min_length=1, max_length=64, description="A current TOTP code, or a recovery code."
    )


class TwoFactorReset(_Response):
    account: str
    removed: bool = Field(description="False when the account had no second factor.")


class PasskeyOptions(_Response):
    options: dict[str, Any] = Field(
        description="PublicKeyCredentialCreationOptions (binary fields base64url) for "
        "navigator.credentials.create; its challenge is good for one answer, 5 minutes."
    )


class PasskeyRegister(_Request):
    name: str = Field(min_length=1, max_length=64, description="To tell passkeys apart.")
    credential: dict[str, Any] = Field(
        description="The PublicKeyCredential, JSON-encoded (PublicKeyCredential.toJSON())."
    )


class PasskeyInfo(_Response):
    id: int
    name: str
    created_at: str
    last_used_at: str | None


class PasskeyList(_Response):
    passkeys: list[PasskeyInfo]


TWOFACTOR_REQUEST_MODELS: tuple[type[BaseModel], ...] = (
    TotpConfirm,
    TwoFactorDisable,
    PasskeyRegister,
)
TWOFACTOR_RESPONSE_MODELS: tuple[type[BaseModel], ...] = (
    TwoFactorState,
    TotpEnrolment,
    RecoveryCodes,
    TwoFactorReset,
    PasskeyOptions,
    PasskeyInfo,
    PasskeyList,
)
