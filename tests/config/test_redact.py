"""Passwords in a spec's URLs never reach what forgeml prints or records."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from forgeml.config.loader import load_spec
from forgeml.config.redact import hide_password, redacted_spec

SECRET = "s3cr3t-pw"


def test_every_url_of_the_spec_hides_its_password() -> None:
    spec = load_spec(
        {
            "name": "churn",
            "task": "classification",
            "target": "churned",
            "data": {
                "source": f"postgresql://ml:{SECRET}@db/warehouse?table=events",
                "test_source": f"postgresql://ml:{SECRET}@db/warehouse?table=holdout",
            },
            "tuning": {"storage": f"postgresql://optuna:{SECRET}@db/optuna"},
            "registry": {"uri": f"postgresql://ml:{SECRET}@db/registry"},
        }
    )
    redacted = redacted_spec(spec)
    assert SECRET not in redacted.model_dump_json()
    assert redacted.tuning.storage == "postgresql://optuna:***@db/optuna"
    assert redacted.registry.uri == "postgresql://ml:***@db/registry"
    assert SECRET in spec.model_dump_json()  # the spec itself is left as it was
    assert redacted.base_dir == spec.base_dir


@given(
    user=st.text("abcdefghij_.-0123456789", min_size=1, max_size=12),
    password=st.text(st.characters(exclude_characters="@/\x00"), min_size=1, max_size=20),
)
def test_hide_password_removes_any_password(user: str, password: str) -> None:
    url = f"postgresql://{user}:{password}@db.internal:5432/registry"
    assert hide_password(url) == f"postgresql://{user}:***@db.internal:5432/registry"
