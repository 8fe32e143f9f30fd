"""How a service verifies access tokens, from <SERVICE>_AUTH_* settings: whose tokens it
accepts (issuer), for which API (audience), and where the issuer publishes its keys. The user
service's own in the samples; an external OIDC provider's by configuration."""

from __future__ import annotations

import httpx
from pydantic import Field
from pydantic_settings import BaseSettings

from commerce_services.auth.keys import RemoteJwks
from commerce_services.auth.tokens import TokenVerifier


class AuthSettings(BaseSettings):
    auth_issuer: str = Field(min_length=1)
    auth_jwks_url: str = Field(pattern=r"^https?://")
    auth_audience: str = Field(default="commerce-api", min_length=1)
    # The claim holding the caller's roles (a list of strings); providers name it differently.
    auth_roles_claim: str = Field(default="roles", min_length=1)
    # An unknown key id refetches the JWKS at most this often (a flood of forged kids cannot
    # turn into a flood of requests to the issuer).
    auth_jwks_min_refresh_s: float = Field(default=10.0, gt=0)
    # Known keys are refetched this often anyway: a key the issuer dropped stops verifying.
    auth_jwks_max_age_s: float = Field(default=300.0, gt=0)
    # Clock difference tolerated between the issuer and this service.
    auth_leeway_s: float = Field(default=30.0, ge=0, le=300)


def remote_verifier(settings: AuthSettings, http: httpx.AsyncClient) -> TokenVerifier:
    """A verifier of the tokens of the configured issuer, its keys fetched with `http`."""
    keys = RemoteJwks(
        settings.auth_jwks_url,
        http,
        min_refresh_s=settings.auth_jwks_min_refresh_s,
        max_age_s=settings.auth_jwks_max_age_s,
    )
    return TokenVerifier(
        keys,
        issuer=settings.auth_issuer,
        audience=settings.auth_audience,
        roles_claim=settings.auth_roles_claim,
        leeway_s=settings.auth_leeway_s,
    )
