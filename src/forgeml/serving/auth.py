"""Who may call what: public routes, and admin routes behind an API key.

The admin key comes from ``FORGEML_ADMIN_KEY`` or from the file named by
``FORGEML_ADMIN_KEY_FILE`` (a mounted Kubernetes Secret, say). Admin routes are enabled
when a key is configured; asking for them (``--admin``) without a key is a start-up
error. Callers present the key as ``Authorization: Bearer <key>`` or ``X-API-Key``; keys
are compared in constant time.

>>> keys = AdminKey.from_env({"FORGEML_ADMIN_KEY": "s3cret-key-123"})
>>> keys.allows({"authorization": "Bearer s3cret-key-123"}), keys.allows({})
(True, False)
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from forgeml.errors import ConfigError

__all__ = ["ENV_KEY", "ENV_KEY_FILE", "AdminKey"]

ENV_KEY = "FORGEML_ADMIN_KEY"
ENV_KEY_FILE = "FORGEML_ADMIN_KEY_FILE"
_MIN_LENGTH = 12


@dataclass(frozen=True)
class AdminKey:
    key: str | None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AdminKey:
        key = env.get(ENV_KEY)
        path = env.get(ENV_KEY_FILE)
        if key and path:
            raise ConfigError(f"serve: set {ENV_KEY} or {ENV_KEY_FILE}, not both")
        if path:
            try:
                key = Path(path).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(
                    f"serve: cannot read the admin key file {path}: {exc.strerror}"
                ) from exc
        if key is not None and len(key) < _MIN_LENGTH:
            raise ConfigError(f"serve: the admin key must be at least {_MIN_LENGTH} characters")
        return cls(key or None)

    @property
    def configured(self) -> bool:
        return self.key is not None

    def allows(self, headers: Mapping[str, str]) -> bool:
        if self.key is None:
            return False
        presented = headers.get("x-api-key")
        auth = headers.get("authorization", "")
        if presented is None and auth[:7].lower() == "bearer ":
            presented = auth[7:].strip()
        return presented is not None and hmac.compare_digest(presented.encode(), self.key.encode())
