"""The API's token-signing keys: ES256 key pairs kept in ``<data_dir>/keys/``.

Access tokens are JWTs signed here and verified by every API process, so the private
key lives in the data directory (readable by the owner only: the directory is created
0700 and each key file 0600) rather than in code or environment. The first process to
need a key creates it under a file lock, so two API processes started together agree on
one key. Rotation adds a newer key that signs from then on; older keys keep verifying
tokens already issued until they are pruned, and all public keys are published as a
JWKS (``/.well-known/jwks.json``) so a resource server elsewhere can verify tokens too.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from joserfc.jwk import ECKey

ALGORITHM = "ES256"
CURVE = "P-256"
_SUFFIX = ".jwk.json"


class KeyRing:
    """The signing keys of one data directory, newest first."""

    def __init__(self, directory: Path, keys: list[tuple[int, ECKey]]) -> None:
        if not keys:
            raise ValueError(f"no signing key in {directory}")
        self.directory = directory
        self._keys = sorted(keys, key=lambda pair: pair[0], reverse=True)
        self._by_kid = {key.kid: key for _, key in self._keys}

    @classmethod
    def load_or_create(cls, data_dir: Path) -> KeyRing:
        """The keys under ``data_dir/keys``, creating the first one if there is none."""
        directory = data_dir / "keys"
        with _locked(directory):
            keys = _read_keys(directory)
            if not keys:
                keys = [_write_new_key(directory)]
        return cls(directory, keys)

    def rotate(self) -> ECKey:
        """Create a newer key; it signs from now on, older ones still verify."""
        with _locked(self.directory):
            created, key = _write_new_key(self.directory)
        self._keys.insert(0, (created, key))
        self._by_kid[key.kid] = key
        return key

    def prune(self, *, keep: int = 2) -> list[str]:
        """Delete all but the ``keep`` newest keys (after tokens they signed have expired)."""
        if keep < 1:
            raise ValueError("keep at least the signing key")
        removed: list[str] = []
        with _locked(self.directory):
            for created, key in self._keys[keep:]:
                (self.directory / _filename(created, key)).unlink(missing_ok=True)
                removed.append(str(key.kid))
                self._by_kid.pop(key.kid, None)
            self._keys = self._keys[:keep]
        return removed

    @property
    def signing_key(self) -> ECKey:
        return self._keys[0][1]

    def key_for(self, kid: str) -> ECKey | None:
        """The verification key ``kid``; re-reads the directory once for a key another process made."""
        key = self._by_kid.get(kid)
        if key is None and isinstance(kid, str):
            for created, found in _read_keys(self.directory):
                if found.kid not in self._by_kid:
                    self._keys.append((created, found))
                    self._by_kid[found.kid] = found
            self._keys.sort(key=lambda pair: pair[0], reverse=True)
            key = self._by_kid.get(kid)
        return key

    def jwks(self) -> dict[str, Any]:
        """Public keys only, for ``/.well-known/jwks.json``."""
        return {"keys": [key.as_dict(private=False) for _, key in self._keys]}


def _filename(created: int, key: ECKey) -> str:
    return f"{created:020d}-{key.kid}{_SUFFIX}"


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _read_keys(directory: Path) -> list[tuple[int, ECKey]]:
    keys = []
    for path in directory.glob(f"*{_SUFFIX}"):
        created = int(path.name.split("-", 1)[0])
        data = json.loads(path.read_text())
        keys.append((created, ECKey.import_key(data)))
    return keys


def _write_new_key(directory: Path) -> tuple[int, ECKey]:
    key = ECKey.generate_key(CURVE, private=True)
    kid = key.thumbprint()
    key = ECKey.import_key({**key.as_dict(private=True), "kid": kid, "use": "sig", "alg": ALGORITHM})
    created = time.time_ns()
    path = directory / _filename(created, key)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(key.as_dict(private=True), handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return created, key


SANDBOX_SECRET_FILE = "sandbox.secret"


def sandbox_secret(data_dir: Path) -> bytes:
    """The platform's sandbox secret (noise seeds, watermarks): 32 random bytes, created once, 0600.

    Every API process of one data directory must use the same secret, or the same query
    would get different noise (averaging attacks) and leaks could not be traced.
    """
    directory = data_dir / "keys"
    path = directory / SANDBOX_SECRET_FILE
    with _locked(directory):
        if not path.exists():
            fd = os.open(path.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(os.urandom(32))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(path.with_suffix(".tmp"), path)
        secret = path.read_bytes()
    if len(secret) < 32:
        raise ValueError(f"{path} is shorter than 32 bytes; restore it from backup")
    return secret
