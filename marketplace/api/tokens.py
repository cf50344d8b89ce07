"""Access tokens: short-lived ES256 JWTs bound to one unit, one member and some subscriptions.

The token says who (``sub``: the unit member), for whom (``unit``), through which
client (``client_id``) and for what (``scope``: subscription ids, space-separated as in
RFC 6749/9068). Verification here is only the cryptographic and temporal part
(signature, ``alg``, ``kid``, ``iss``, ``aud``, ``exp``, ``iat``, claim types); the API then
checks the claims LIVE against the store on every request, so a revoked client or a
suspended unit or subscription fails at once, not when the token expires.

A verified token string is remembered (bounded) so that a client presenting the same
token many times pays for one signature check; expiry is still checked every time.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from threading import Lock
from typing import Any
from uuid import UUID

from joserfc import jwt
from joserfc.errors import JoseError

from domain.errors import DomainError
from marketplace.keys import ALGORITHM, KeyRing

AUDIENCE = "shuyun-api"
#: The longest lifetime a token may have (the brief: at most 15 minutes).
MAX_TTL_SECONDS = 15 * 60
DEFAULT_TTL_SECONDS = 10 * 60
#: Clock skew tolerated for ``iat`` between API processes.
SKEW_SECONDS = 60
MAX_TOKEN_CHARS = 8192
_CACHE_SIZE = 10_000


@dataclass(frozen=True)
class TokenClaims:
    """The verified content of an access token."""

    issuer: str
    user_id: str
    unit_id: UUID
    client_id: UUID
    scope: tuple[UUID, ...]
    issued_at: int
    expires_at: int
    jti: str
    #: Thumbprint of the client's DPoP key when the token is bound to it (RFC 9449 ``cnf.jkt``).
    jkt: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "scope", tuple(self.scope))

    def as_jwt_claims(self) -> dict[str, Any]:
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": self.user_id,
            "aud": AUDIENCE,
            "unit": str(self.unit_id),
            "client_id": str(self.client_id),
            "scope": " ".join(str(s) for s in self.scope),
            "iat": self.issued_at,
            "exp": self.expires_at,
            "jti": self.jti,
        }
        if self.jkt is not None:
            claims["cnf"] = {"jkt": self.jkt}
        return claims


class TokenAuthority:
    """Issues and verifies the API's access tokens with the data directory's key ring."""

    def __init__(self, keys: KeyRing, *, issuer: str, ttl_seconds: int = DEFAULT_TTL_SECONDS) -> None:
        if not 0 < ttl_seconds <= MAX_TTL_SECONDS:
            raise ValueError(f"token lifetime must be 1..{MAX_TTL_SECONDS} seconds, got {ttl_seconds}")
        self.keys = keys
        self.issuer = issuer
        self.ttl_seconds = ttl_seconds
        self._verified: OrderedDict[str, TokenClaims] = OrderedDict()
        self._lock = Lock()

    def issue(
        self,
        *,
        user_id: str,
        unit_id: UUID,
        client_id: UUID,
        scope: tuple[UUID, ...],
        now: datetime,
        jkt: str | None = None,
    ) -> tuple[str, TokenClaims]:
        issued_at = int(now.timestamp())
        claims = TokenClaims(
            issuer=self.issuer,
            user_id=user_id,
            unit_id=unit_id,
            client_id=client_id,
            scope=scope,
            issued_at=issued_at,
            expires_at=issued_at + self.ttl_seconds,
            jti=secrets.token_urlsafe(16),
            jkt=jkt,
        )
        key = self.keys.signing_key
        header = {"alg": ALGORITHM, "kid": key.kid, "typ": "at+jwt"}  # RFC 9068 token type
        return jwt.encode(header, claims.as_jwt_claims(), key, algorithms=[ALGORITHM]), claims

    def verify(self, token: str, *, now: datetime) -> TokenClaims:
        """The token's claims, or ``InvalidToken`` / ``TokenExpired`` saying what is wrong."""
        with self._lock:
            claims = self._verified.get(token)
        if claims is None:
            claims = self._verify_signed(token, now)
            with self._lock:
                self._verified[token] = claims
                if len(self._verified) > _CACHE_SIZE:
                    self._verified.popitem(last=False)
        if claims.expires_at <= int(now.timestamp()):
            raise TokenExpired(
                f"the access token expired at {claims.expires_at} (POSIX seconds); request a new one",
                claims=claims,
            )
        return claims

    def _verify_signed(self, token: str, now: datetime) -> TokenClaims:
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS or token.count(".") != 2:
            raise InvalidToken("the access token is not a compact JWT")
        header = _segment(token, 0)
        if header is None:
            raise InvalidToken("the access token's header is not base64url JSON")
        if header.get("alg") != ALGORITHM:
            # Never let the token choose its algorithm ("none", HS256 with the public key, ...).
            raise InvalidToken(f"the access token must be signed with {ALGORITHM}, not {header.get('alg')!r}")
        kid = header.get("kid")
        key = self.keys.key_for(kid) if isinstance(kid, str) else None
        if key is None:
            raise InvalidToken(f"the access token was signed with an unknown key {kid!r}")
        try:
            decoded = jwt.decode(token, key, algorithms=[ALGORITHM])
        except (JoseError, ValueError) as error:
            raise InvalidToken(f"the access token's signature does not verify ({error})") from None
        claims = self._check_claims(decoded.claims, now)
        return claims

    def _check_claims(self, raw: dict[str, Any], now: datetime) -> TokenClaims:
        if raw.get("iss") != self.issuer:
            raise InvalidToken(f"the access token was issued by {raw.get('iss')!r}, not {self.issuer!r}")
        aud = raw.get("aud")
        if aud != AUDIENCE and not (isinstance(aud, list) and AUDIENCE in aud):
            raise InvalidToken(f"the access token is for audience {aud!r}, not {AUDIENCE!r}")
        iat, exp = raw.get("iat"), raw.get("exp")
        if not isinstance(iat, int) or not isinstance(exp, int) or isinstance(iat, bool) or isinstance(exp, bool):
            raise InvalidToken("the access token lacks whole-second iat and exp claims")
        if exp - iat > MAX_TTL_SECONDS:
            raise InvalidToken(f"the access token lives longer than {MAX_TTL_SECONDS} seconds")
        if iat > int(now.timestamp()) + SKEW_SECONDS:
            raise InvalidToken("the access token was issued in the future")
        sub, jti, scope = raw.get("sub"), raw.get("jti"), raw.get("scope")
        if not isinstance(sub, str) or not sub or not isinstance(jti, str) or not jti:
            raise InvalidToken("the access token lacks sub or jti")
        unit_id, client_id = _uuid(raw.get("unit")), _uuid(raw.get("client_id"))
        if unit_id is None or client_id is None:
            raise InvalidToken("the access token lacks a valid unit or client_id")
        if not isinstance(scope, str):
            raise InvalidToken("the access token lacks a scope")
        subscriptions = tuple(_uuid(s) for s in scope.split())
        if not subscriptions or any(s is None for s in subscriptions):
            raise InvalidToken("the access token's scope is not a list of subscription ids")
        cnf = raw.get("cnf")
        jkt = cnf.get("jkt") if isinstance(cnf, dict) else None
        if cnf is not None and (not isinstance(jkt, str) or not jkt):
            raise InvalidToken("the access token's cnf claim has no key thumbprint")
        return TokenClaims(
            issuer=self.issuer,
            user_id=sub,
            unit_id=unit_id,
            client_id=client_id,
            scope=tuple(s for s in subscriptions if s is not None),
            issued_at=iat,
            expires_at=exp,
            jti=jti,
            jkt=jkt,
        )


def unverified_client_id(token: str) -> UUID | None:
    """The client a token CLAIMS to be from, without trusting it.

    Used only to meter a refused, tampered token against the (stored) client it names,
    so that a leaked-and-altered token leaves a trace on the ledger of whoever leaked it.
    """
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS or token.count(".") != 2:
        return None
    payload = _segment(token, 1)
    return _uuid(payload.get("client_id")) if payload else None


def _segment(token: str, index: int) -> dict[str, Any] | None:
    part = token.split(".")[index]
    try:
        data = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _uuid(value: object) -> UUID | None:
    if not isinstance(value, str):
        return None
    try:
        return UUID(value)
    except ValueError:
        return None


# -- errors ------------------------------------------------------------------------------


class InvalidToken(DomainError):
    """RFC 6750 ``invalid_token``: missing, malformed, forged or not ours."""

    code = "invalid_token"
    status = 401


class TokenExpired(InvalidToken):
    """Authentic but past ``exp``; carries the (verified) claims so the refusal can be metered."""

    code = "token_expired"

    def __init__(self, message: str, *, claims: TokenClaims) -> None:
        super().__init__(message, client=claims.client_id)
        self.claims = claims
