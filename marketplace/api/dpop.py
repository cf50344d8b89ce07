"""DPoP (RFC 9449): access tokens bound to a key only their client holds (art. 23).

A bearer token works for whoever holds it. A client that sends a DPoP proof to the
token endpoint gets a token carrying the thumbprint of its public key (``cnf.jkt``);
every request with that token must then carry a fresh proof signed by the matching
private key, for that very method and URL and that very token (``ath``). A copied token
is useless to anyone else: they cannot sign the proof. The API can be told to accept
bound tokens only (``SHUYUN_API_REQUIRE_DPOP=1``).

Replay of a proof is refused within one API process (proof ids are remembered for the
acceptance window); proofs are short-lived (``iat`` within a minute) so a replay window
across processes is at most that minute and still needs the exact method, URL and token.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OKPKey

from marketplace.api.tokens import InvalidToken

ALGORITHMS = ("ES256", "Ed25519")
#: How far ``iat`` of a proof may be from the server's clock.
MAX_AGE_SECONDS = 60
MAX_PROOF_CHARS = 4096


@dataclass(frozen=True)
class Proof:
    """A verified proof: the thumbprint of the key that signed it."""

    jkt: str
    jti: str


def access_token_hash(token: str) -> str:
    """``ath``: base64url SHA-256 of the access token (RFC 9449 §4.2)."""
    return base64.urlsafe_b64encode(hashlib.sha256(token.encode()).digest()).decode().rstrip("=")


def normalise_url(url: str) -> str:
    """``htu`` is compared without query and fragment (RFC 9449 §4.3)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path, "", ""))


class DPoPVerifier:
    def __init__(self, *, max_age_seconds: int = MAX_AGE_SECONDS, replay_size: int = 100_000) -> None:
        self.max_age_seconds = max_age_seconds
        self.replay_size = replay_size
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def verify(self, proof: str | None, *, method: str, url: str, access_token: str | None, now: datetime) -> Proof:
        """The proof's key thumbprint, or ``InvalidDPoPProof`` saying what is wrong."""
        if not proof:
            raise InvalidDPoPProof("a DPoP proof is required: send the DPoP header")
        if len(proof) > MAX_PROOF_CHARS or proof.count(".") != 2:
            raise InvalidDPoPProof("the DPoP proof is not a compact JWT")
        header = _segment(proof)
        if header is None or header.get("typ") != "dpop+jwt":
            raise InvalidDPoPProof("the DPoP proof must have typ dpop+jwt")
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise InvalidDPoPProof(f"the DPoP proof must be signed with one of {', '.join(ALGORITHMS)}")
        jwk = header.get("jwk")
        if not isinstance(jwk, dict) or "d" in jwk:
            raise InvalidDPoPProof("the DPoP proof must carry the public key (jwk) that signed it")
        try:
            key: ECKey | OKPKey = ECKey.import_key(jwk) if jwk.get("kty") == "EC" else OKPKey.import_key(jwk)
            claims: dict[str, Any] = jwt.decode(proof, key, algorithms=[str(alg)]).claims
        except (JoseError, ValueError, TypeError) as error:
            raise InvalidDPoPProof(f"the DPoP proof's signature does not verify ({error})") from None
        if claims.get("htm") != method:
            raise InvalidDPoPProof(f"the DPoP proof is for method {claims.get('htm')!r}, not {method}")
        htu = claims.get("htu")
        if not isinstance(htu, str) or normalise_url(htu) != normalise_url(url):
            raise InvalidDPoPProof(f"the DPoP proof is for {htu!r}, not {normalise_url(url)}")
        iat = claims.get("iat")
        if not isinstance(iat, int) or isinstance(iat, bool) or abs(iat - now.timestamp()) > self.max_age_seconds:
            raise InvalidDPoPProof(f"the DPoP proof must be issued within {self.max_age_seconds} seconds of now")
        if access_token is not None and claims.get("ath") != access_token_hash(access_token):
            raise InvalidDPoPProof("the DPoP proof is not for this access token (ath)")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not 8 <= len(jti) <= 200:
            raise InvalidDPoPProof("the DPoP proof needs a unique jti")
        thumbprint = key.thumbprint()
        self._remember(f"{thumbprint}:{jti}")
        return Proof(jkt=thumbprint, jti=jti)

    def _remember(self, key: str) -> None:
        now = time.monotonic()
        with self._lock:
            while self._seen:
                oldest, seen_at = next(iter(self._seen.items()))
                if now - seen_at <= 2 * self.max_age_seconds and len(self._seen) < self.replay_size:
                    break
                del self._seen[oldest]
            if key in self._seen:
                raise InvalidDPoPProof("this DPoP proof was already used")
            self._seen[key] = now


def make_proof(key: ECKey, *, method: str, url: str, access_token: str | None = None,
               now: datetime | None = None, jti: str | None = None) -> str:
    """A client-side proof (for the SDK and tests)."""
    import secrets

    issued = int(now.timestamp() if now else time.time())
    claims: dict[str, Any] = {"htm": method, "htu": normalise_url(url), "iat": issued,
                              "jti": jti or secrets.token_urlsafe(16)}
    if access_token is not None:
        claims["ath"] = access_token_hash(access_token)
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": key.as_dict(private=False)}
    return jwt.encode(header, claims, key, algorithms=["ES256"])


def _segment(token: str) -> dict[str, Any] | None:
    part = token.split(".")[0]
    try:
        data = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


# -- errors ------------------------------------------------------------------------------


class InvalidDPoPProof(InvalidToken):
    """RFC 9449 ``invalid_dpop_proof``: missing, malformed, replayed, or not for this request or key."""

    code = "invalid_dpop_proof"
