"""Who is calling: access tokens verified the same way in every service (issuer, audience,
expiry, signature by key id from a JWKS URL, so an external OIDC provider replaces the user
service's by configuration), the rule each HTTP route states (anonymous, signed in, staff),
enforced in one place per app, and the gRPC callers each method accepts (mTLS identities)."""
