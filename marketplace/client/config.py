"""Where a workspace's SDK finds the API and its credentials.

The launcher (``shuyun workspace launch``) writes ``workspace.json`` beside the
workspace's notebooks folder and points ``SHUYUN_WORKSPACE_CONFIG`` at it, so kernels
started by that JupyterLab find it with no set-up. The client secret lives in its own
file (mode 0600) that the JSON only names: a notebook never contains a secret, and a
notebook shared with a colleague carries nothing that works outside the workspace.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from marketplace.client.errors import AuthenticationFailed, ShuyunError

ENV_VAR = "SHUYUN_WORKSPACE_CONFIG"
DEFAULT_PATH = Path("~/.shuyun/workspace.json")


class ConfigError(ShuyunError):
    """The workspace configuration is missing or malformed; the message says which file and key."""


@dataclass(frozen=True)
class WorkspaceConfig:
    api_url: str
    client_id: str
    secret_file: Path
    unit_id: str = ""
    member: str = ""
    subscriptions: tuple[str, ...] = field(default_factory=tuple)

    def secret(self) -> str:
        """Read the client secret; refuse a file others can read (it would leak the unit's access)."""
        try:
            mode = self.secret_file.stat().st_mode
            text = self.secret_file.read_text().strip()
        except OSError as error:
            raise AuthenticationFailed(f"cannot read the client secret file {self.secret_file}: {error}") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise AuthenticationFailed(
                f"the client secret file {self.secret_file} is readable by others (mode {oct(mode & 0o777)}); "
                "it must be 0600"
            )
        if not text:
            raise AuthenticationFailed(f"the client secret file {self.secret_file} is empty")
        return text

    def to_json(self) -> dict[str, Any]:
        return {
            "api_url": self.api_url, "client_id": self.client_id, "secret_file": str(self.secret_file),
            "unit_id": self.unit_id, "member": self.member, "subscriptions": list(self.subscriptions),
        }


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    if explicit is not None:
        return Path(explicit).expanduser()
    from_env = os.environ.get(ENV_VAR)
    return Path(from_env).expanduser() if from_env else DEFAULT_PATH.expanduser()


def load_config(path: str | os.PathLike[str] | None = None) -> WorkspaceConfig:
    """Read the workspace config (explicit path, else ``$SHUYUN_WORKSPACE_CONFIG``, else ~/.shuyun)."""
    where = config_path(path)
    try:
        data = json.loads(where.read_text())
    except FileNotFoundError:
        raise ConfigError(
            f"no workspace configuration at {where}: open the notebook from a workspace started with "
            f"`shuyun workspace launch`, or set {ENV_VAR}", code="config_missing",
        ) from None
    except (OSError, ValueError) as error:
        raise ConfigError(f"cannot read the workspace configuration {where}: {error}", code="config_invalid") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: must be a JSON object", code="config_invalid")
    for key in ("api_url", "client_id", "secret_file"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise ConfigError(f"{where}: '{key}' is required (text)", code="config_invalid")
    secret_file = Path(data["secret_file"]).expanduser()
    if not secret_file.is_absolute():
        secret_file = where.parent / secret_file
    subs = data.get("subscriptions") or []
    return WorkspaceConfig(
        api_url=data["api_url"].rstrip("/"), client_id=data["client_id"], secret_file=secret_file,
        unit_id=str(data.get("unit_id", "")), member=str(data.get("member", "")),
        subscriptions=tuple(str(s) for s in subs),
    )


def write_config(path: Path, config: WorkspaceConfig) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config.to_json(), indent=2, ensure_ascii=False) + "\n")


def write_secret(path: Path, secret: str) -> None:
    """Create the secret file 0600 from the start (no window in which it is world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret + "\n")
    os.chmod(path, 0o600)
