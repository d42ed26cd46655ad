"""Where the command line keeps the server address and token:
``$XDG_CONFIG_HOME/trainyard/config.json`` (``~/.config/trainyard/config.json`` by default),
readable by its owner only. ``TRAINYARD_URL`` and ``TRAINYARD_TOKEN`` override it."""

from __future__ import annotations

import json
import os
from pathlib import Path

from trainyard_client.errors import NotLoggedIn, TrainyardError


def config_path() -> Path:
    """The config file's path (XDG_CONFIG_HOME respected when it is an absolute path)."""
    base = os.environ.get("XDG_CONFIG_HOME", "")
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".config"
    return root / "trainyard" / "config.json"


def load_config() -> dict:
    """The saved settings (``{"url", "token"}``), or ``{}`` when there are none."""
    path = config_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise TrainyardError(f"cannot read {path}: {exc}; run 'trainyard login' again") from exc
    return data if isinstance(data, dict) else {}


def save_config(url: str, token: str) -> Path:
    """Save the address and token, in a file only its owner may read (mode 0600)."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    data = {**load_config(), "url": url, "token": token}
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2)
            handle.write("\n")
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def settings() -> tuple[str, str]:
    """The (url, token) to use: the environment first, then the config file."""
    saved = load_config()
    url = os.environ.get("TRAINYARD_URL") or saved.get("url")
    token = os.environ.get("TRAINYARD_TOKEN") or saved.get("token")
    if not url or not token:
        raise NotLoggedIn("not logged in: run 'trainyard login --url URL --token TOKEN' "
                          "(or set TRAINYARD_URL and TRAINYARD_TOKEN)")
    return url, token
