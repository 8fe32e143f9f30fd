"""User service configuration, from USER_* environment variables. Secrets have no default."""

from __future__ import annotations

import ipaddress

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from commerce_services.auth.grpc_identity import GrpcIdentitySettings
from commerce_services.runtime.settings import ServingSettings


class UserSettings(GrpcIdentitySettings, ServingSettings):
    model_config = SettingsConfigDict(env_prefix="USER_", frozen=True)

    mongo_uri: SecretStr  # may carry credentials
    mongo_database: str = "commerce_user"
    dormancy_sweep_interval_s: float = Field(default=3600.0, gt=0)

    grpc_port: int = Field(default=50051, ge=1, le=65535)

    # Identity: the private JWK Set the access tokens are signed with (several keys, by kid)
    # and the id of the one that signs now; both from the Secret the signingKeys binding names.
    signing_keys: SecretStr
    signing_key_id: str = Field(min_length=1)
    # Written into every access token and checked by every verifier (their <P>_AUTH_ISSUER and
    # <P>_AUTH_AUDIENCE).
    auth_issuer: str = Field(min_length=1)
    auth_audience: str = Field(default="commerce-api", min_length=1)
    access_token_ttl_s: int = Field(default=900, ge=60, le=3600)
    refresh_token_ttl_s: int = Field(default=30 * 24 * 3600, ge=3600)

    # Sign-in attempts allowed per account and per client address in a window, counted by
    # every replica together (in MongoDB); past them, 429 until the window ends.
    sign_in_account_attempts: int = Field(default=5, ge=1)
    sign_in_address_attempts: int = Field(default=30, ge=1)
    sign_in_window_s: int = Field(default=900, ge=1)
    # Proxies (CIDRs, a JSON list) whose X-Forwarded-For is believed: the Ingress controller's
    # pods. Without one, the client address is the connection's peer.
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    # The first staff account (the staffBootstrap binding's Secret): created at start when the
    # email has no account, else given the staff role. Both or neither.
    bootstrap_staff_email: str | None = None
    bootstrap_staff_password: SecretStr | None = None

    @model_validator(mode="after")
    def _bootstrap_complete(self) -> UserSettings:
        if (self.bootstrap_staff_email is None) != (self.bootstrap_staff_password is None):
            raise ValueError("set both USER_BOOTSTRAP_STAFF_EMAIL and _PASSWORD, or neither")
        return self
