"""Access tokens and signing keys, without a server: what verification accepts and refuses (art. 23)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from joserfc import jwt
from joserfc.jwk import ECKey, OKPKey

from marketplace.api.dpop import DPoPVerifier, InvalidDPoPProof, make_proof
from marketplace.api.tokens import (
    AUDIENCE,
    MAX_TTL_SECONDS,
    InvalidToken,
    TokenAuthority,
    TokenExpired,
    unverified_client_id,
)
from marketplace.keys import KeyRing, sandbox_secret
from marketplace.services.credentials import hash_secret, verify_secret

NOW = datetime(2025, 6, 1, 4, tzinfo=UTC)
UNIT, CLIENT, SUB = uuid4(), uuid4(), uuid4()


@pytest.fixture
def authority(tmp_path: Path) -> TokenAuthority:
    return TokenAuthority(KeyRing.load_or_create(tmp_path), issuer="urn:test", ttl_seconds=600)


def issue(authority: TokenAuthority, now: datetime = NOW, scope: tuple[UUID, ...] = (SUB,)) -> str:
    token, _ = authority.issue(user_id="ana", unit_id=UNIT, client_id=CLIENT, scope=scope, now=now)
    return token


def b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def parts(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    header, payload, signature = token.split(".")

    def decode(part: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
        return data

    return decode(header), decode(payload), signature


def test_art23_a_token_carries_member_unit_client_and_subscriptions(authority: TokenAuthority) -> None:
    token = issue(authority)
    header, payload, _ = parts(token)
    assert header["alg"] == "ES256" and header["kid"] == authority.keys.signing_key.kid
    assert payload["aud"] == AUDIENCE and payload["iss"] == "urn:test"
    assert (payload["sub"], payload["unit"], payload["client_id"]) == ("ana", str(UNIT), str(CLIENT))
    assert payload["scope"] == str(SUB)
    assert payload["exp"] - payload["iat"] == 600 and payload["jti"]
    claims = authority.verify(token, now=NOW + timedelta(seconds=5))
    assert (claims.user_id, claims.unit_id, claims.client_id, claims.scope) == ("ana", UNIT, CLIENT, (SUB,))


def test_art23_an_expired_token_is_refused_but_its_claims_are_known(authority: TokenAuthority) -> None:
    token = issue(authority)
    authority.verify(token, now=NOW + timedelta(seconds=599))
    with pytest.raises(TokenExpired) as info:
        authority.verify(token, now=NOW + timedelta(seconds=600))
    assert info.value.code == "token_expired" and info.value.status == 401
    assert info.value.claims.client_id == CLIENT


def test_art23_token_lifetime_is_at_most_fifteen_minutes(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        TokenAuthority(KeyRing.load_or_create(tmp_path), issuer="x", ttl_seconds=MAX_TTL_SECONDS + 1)


@pytest.mark.parametrize("claim", ["scope", "unit", "client_id", "sub", "exp", "aud"])
def test_art23_an_altered_claim_breaks_the_signature(authority: TokenAuthority, claim: str) -> None:
    token = issue(authority)
    _, payload, signature = parts(token)
    payload[claim] = {"scope": str(uuid4()), "unit": str(uuid4()), "client_id": str(uuid4()), "sub": "mallory",
                      "exp": int(NOW.timestamp()) + 86400, "aud": "other"}[claim]
    forged = f"{token.split('.')[0]}.{b64(payload)}.{signature}"
    with pytest.raises(InvalidToken, match="signature"):
        authority.verify(forged, now=NOW)


def test_art23_alg_none_and_hmac_with_the_public_key_are_refused(authority: TokenAuthority) -> None:
    _, payload, _ = parts(issue(authority))
    unsigned = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(payload)}."
    with pytest.raises(InvalidToken, match="ES256"):
        authority.verify(unsigned, now=NOW)
    # The classic key-confusion forgery: HMAC keyed with the (public) verification key.
    public_pem = authority.keys.signing_key.as_pem(private=False)
    signing_input = f"{b64({'alg': 'HS256', 'kid': authority.keys.signing_key.kid})}.{b64(payload)}"
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    confused = f"{signing_input}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"
    with pytest.raises(InvalidToken, match="ES256"):
        authority.verify(confused, now=NOW)


def test_art23_a_token_signed_by_another_key_is_refused(authority: TokenAuthority) -> None:
    _, payload, _ = parts(issue(authority))
    attacker = ECKey.generate_key("P-256", private=True)
    same_kid = jwt.encode({"alg": "ES256", "kid": authority.keys.signing_key.kid}, payload, attacker,
                          algorithms=["ES256"])
    with pytest.raises(InvalidToken, match="signature"):
        authority.verify(same_kid, now=NOW)
    unknown_kid = jwt.encode({"alg": "ES256", "kid": "mallory"}, payload, attacker, algorithms=["ES256"])
    with pytest.raises(InvalidToken, match="unknown key"):
        authority.verify(unknown_kid, now=NOW)


def test_art23_a_token_of_another_issuer_or_from_the_future_is_refused(tmp_path: Path) -> None:
    keys = KeyRing.load_or_create(tmp_path)
    ours, theirs = TokenAuthority(keys, issuer="urn:ours"), TokenAuthority(keys, issuer="urn:theirs")
    with pytest.raises(InvalidToken, match="issued by"):
        ours.verify(issue(theirs), now=NOW)
    with pytest.raises(InvalidToken, match="future"):
        ours.verify(issue(ours, now=NOW + timedelta(minutes=5)), now=NOW)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(position=st.integers(0, 10_000), replacement=st.characters(codec="ascii"))
def test_art23_any_changed_character_is_refused(authority: TokenAuthority, position: int, replacement: str) -> None:
    token = issue(authority)
    i = position % len(token)
    if token[i] == replacement:
        return
    altered = token[:i] + replacement + token[i + 1:]
    try:
        claims = authority.verify(altered, now=NOW)
    except InvalidToken:
        return
    # base64url has slack in the last character's low bits: a "change" there may decode to the same bytes.
    assert claims == authority.verify(token, now=NOW)


@given(junk=st.text(max_size=300))
def test_art23_junk_is_refused_as_invalid_token(junk: str) -> None:
    authority = TokenAuthority.__new__(TokenAuthority)  # verification of junk never reaches the keys
    authority.issuer, authority._verified = "x", {}  # type: ignore[assignment]
    import threading

    authority._lock = threading.Lock()
    with pytest.raises(InvalidToken):
        authority._verify_signed(junk, NOW)
    assert unverified_client_id(junk) is None or isinstance(unverified_client_id(junk), UUID)


def test_art8_the_signing_key_is_private_to_the_owner_and_shared_by_processes(tmp_path: Path) -> None:
    first = KeyRing.load_or_create(tmp_path)
    second = KeyRing.load_or_create(tmp_path)
    assert first.signing_key.kid == second.signing_key.kid
    directory = tmp_path / "keys"
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    files = list(directory.glob("*.jwk.json"))
    assert len(files) == 1 and stat.S_IMODE(os.stat(files[0]).st_mode) == 0o600
    assert all("d" not in key for key in first.jwks()["keys"])  # no private part published


def test_art8_rotation_keeps_old_tokens_valid_and_signs_with_the_new_key(tmp_path: Path) -> None:
    keys = KeyRing.load_or_create(tmp_path)
    authority = TokenAuthority(keys, issuer="x")
    old = issue(authority)
    new_key = keys.rotate()
    assert parts(issue(authority))[0]["kid"] == new_key.kid
    other_process = TokenAuthority(KeyRing.load_or_create(tmp_path), issuer="x")
    assert other_process.verify(old, now=NOW).client_id == CLIENT
    assert {k["kid"] for k in keys.jwks()["keys"]} == {new_key.kid, parts(old)[0]["kid"]}
    keys.prune(keep=1)
    fresh = TokenAuthority(KeyRing.load_or_create(tmp_path), issuer="x")
    with pytest.raises(InvalidToken, match="unknown key"):
        fresh.verify(old, now=NOW)


def test_art8_the_sandbox_secret_is_created_once_and_private(tmp_path: Path) -> None:
    secret = sandbox_secret(tmp_path)
    assert len(secret) == 32 and sandbox_secret(tmp_path) == secret
    assert stat.S_IMODE(os.stat(tmp_path / "keys" / "sandbox.secret").st_mode) == 0o600


@settings(max_examples=10, deadline=None)
@given(secret=st.text(min_size=1, max_size=60), other=st.text(min_size=1, max_size=60))
def test_art18_secrets_are_stored_as_salted_hashes_that_verify_only_the_secret(secret: str, other: str) -> None:
    stored = hash_secret(secret)
    assert stored.startswith("scrypt$")
    assert len(secret) < 12 or secret not in stored  # (a short text may occur in base64 by chance)
    assert verify_secret(secret, stored)
    assert verify_secret(other, stored) is (other == secret)
    assert hash_secret(secret) != stored  # salted
    assert not verify_secret(secret, "garbage") and not verify_secret(secret, stored.replace("scrypt", "md5"))


# -- DPoP proofs (RFC 9449) ------------------------------------------------------------------------
URL = "https://api.example/v1/products/x/query"


def test_art23_a_dpop_proof_binds_method_url_token_time_and_key() -> None:
    key = ECKey.generate_key("P-256", private=True)
    verifier = DPoPVerifier()
    proof = make_proof(key, method="POST", url=URL + "?subscription=1", access_token="tok", now=NOW)
    assert verifier.verify(proof, method="POST", url=URL, access_token="tok", now=NOW).jkt == key.thumbprint()
    cases: dict[str, str | None] = {
        "already used": proof,
        "method": make_proof(key, method="GET", url=URL, access_token="tok", now=NOW),
        "is for": make_proof(key, method="POST", url=URL + "/other", access_token="tok", now=NOW),
        "ath": make_proof(key, method="POST", url=URL, access_token="other", now=NOW),
        "within": make_proof(key, method="POST", url=URL, access_token="tok", now=NOW - timedelta(minutes=5)),
        "required": None,
    }
    for message, case in cases.items():
        with pytest.raises(InvalidDPoPProof, match=message):
            verifier.verify(case, method="POST", url=URL, access_token="tok", now=NOW)


def test_art23_a_dpop_proof_must_be_signed_by_the_public_key_it_carries() -> None:
    key, other = ECKey.generate_key("P-256", private=True), ECKey.generate_key("P-256", private=True)
    claims = {"htm": "POST", "htu": URL, "iat": int(NOW.timestamp()), "jti": "abcdefghij"}
    swapped = jwt.encode({"typ": "dpop+jwt", "alg": "ES256", "jwk": other.as_dict(private=False)}, claims, key,
                         algorithms=["ES256"])
    leaked = jwt.encode({"typ": "dpop+jwt", "alg": "ES256", "jwk": key.as_dict(private=True)}, claims, key,
                        algorithms=["ES256"])
    untyped = jwt.encode({"alg": "ES256", "jwk": key.as_dict(private=False)}, claims, key, algorithms=["ES256"])
    verifier = DPoPVerifier()
    for proof, message in ((swapped, "signature"), (leaked, "public key"), (untyped, "typ")):
        with pytest.raises(InvalidDPoPProof, match=message):
            verifier.verify(proof, method="POST", url=URL, access_token=None, now=NOW)


def test_art23_ed25519_proofs_are_accepted_too() -> None:
    key = OKPKey.generate_key("Ed25519", private=True)
    claims = {"htm": "POST", "htu": URL, "iat": int(NOW.timestamp()), "jti": "0123456789"}
    proof = jwt.encode({"typ": "dpop+jwt", "alg": "Ed25519", "jwk": key.as_dict(private=False)}, claims, key,
                       algorithms=["Ed25519"])
    assert DPoPVerifier().verify(proof, method="POST", url=URL, access_token=None, now=NOW).jkt == key.thumbprint()


def test_art23_a_bound_token_carries_its_key_thumbprint(authority: TokenAuthority) -> None:
    token, _ = authority.issue(user_id="ana", unit_id=UNIT, client_id=CLIENT, scope=(SUB,), now=NOW, jkt="thumb")
    assert parts(token)[1]["cnf"] == {"jkt": "thumb"}
    assert authority.verify(token, now=NOW).jkt == "thumb"
    assert authority.verify(issue(authority), now=NOW).jkt is None
