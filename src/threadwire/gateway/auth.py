"""Bearer tokens: HS256 JWTs whose `sub` is the user (or service) and `scope` its rights.

Only HS256 is accepted (never `none`, never another algorithm), `sub` must be in the
thread-ID grammar, `exp` is honoured: checked on every request, and a WebSocket or SSE
stream opened with the token ends when it passes (decision 0100). A token whose `scope`
contains `events:write` is a service token: it may ingest events and nothing else.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Final

import jwt

from threadwire.ids import InvalidIdError, validate_thread_id

ALGORITHM: Final = "HS256"
SCOPE_EVENTS_WRITE: Final = "events:write"
DEFAULT_TTL: Final = 24 * 3600
VERIFIED_CACHE_SIZE: Final = 4096
"""Tokens whose verification is remembered until their `exp` (LRU): a producer sends
the same token with every request, and checking its signature again cost 3 to 5 % of
an ingest request."""

_verified: OrderedDict[tuple[str, str], Principal] = OrderedDict()


class AuthError(Exception):
    """A missing or bad token; the message says which check failed."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a token speaks for: `subject` (user or service name), its scopes, and until
    when (`expires_at`, Unix seconds; None for a token without `exp`)."""

    subject: str
    scopes: frozenset[str]
    expires_at: float | None = None

    @property
    def is_service(self) -> bool:
        """True for service tokens (scope `events:write`): ingest only, no user rights."""
        return SCOPE_EVENTS_WRITE in self.scopes


def issue_token(
    secret: str, subject: str, *, ttl: float | None = DEFAULT_TTL, service: bool = False
) -> str:
    """A signed token for `subject` (a user, or a service with `service=True`).

    `ttl=None` issues a token without `exp`.
    """
    validate_thread_id(subject)
    now = int(time.time())
    claims: dict[str, Any] = {"sub": subject, "iat": now}
    if ttl is not None:
        claims["exp"] = now + int(ttl)
    if service:
        claims["scope"] = SCOPE_EVENTS_WRITE
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_token(secret: str, token: str) -> Principal:
    """The principal of a valid token; raises AuthError for anything else.

    A token verified before with the same secret is answered from memory until its
    `exp` passes; from then on it is checked (and refused) again.
    """
    key = (secret, token)
    known = _verified.get(key)
    if known is not None:
        if known.expires_at is None or known.expires_at > time.time():
            _verified.move_to_end(key)
            return known
        del _verified[key]
    principal = _verify(secret, token)
    _verified[key] = principal
    if len(_verified) > VERIFIED_CACHE_SIZE:
        _verified.popitem(last=False)
    return principal


def _verify(secret: str, token: str) -> Principal:
    try:
        header = jwt.get_unverified_header(token)
        if header.get("alg") != ALGORITHM:
            raise AuthError(f"token algorithm must be {ALGORITHM}")
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": ["sub"]})
    except jwt.PyJWTError as exc:
        raise AuthError(f"bad token: {exc}") from exc
    subject = claims.get("sub")
    try:
        validate_thread_id(subject)
    except InvalidIdError as exc:
        raise AuthError(f"bad token subject ({exc.code})") from exc
    assert isinstance(subject, str)
    return Principal(subject, _scopes(claims.get("scope")), _expiry(claims.get("exp")))


def bearer_token(authorization: str | None, access_token: str | None) -> str | None:
    """The token from an `Authorization: Bearer` header, else the `access_token` query."""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return None
    return access_token or None


def _expiry(raw: object) -> float | None:
    """`exp` as Unix seconds (PyJWT has checked that it is a number in the future); one
    too large for a float (10**400) is as good as never."""
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        return None
    try:
        return float(raw)
    except (ValueError, OverflowError):
        return None


def _scopes(raw: object) -> frozenset[str]:
    if isinstance(raw, str):
        return frozenset(raw.split())
    if isinstance(raw, list | tuple):
        return frozenset(s for s in raw if isinstance(s, str))
    return frozenset()
