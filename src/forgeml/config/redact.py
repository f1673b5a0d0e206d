"""Keep passwords out of what forgeml prints and records.

URLs in a spec (the registry, SQL data sources) may carry a password, often expanded from
``${VAR}``. Everything shown to users or stored with a run (CLI output, the lineage spec,
the run's config, the HTML report) goes through :func:`redacted_spec` or
:func:`hide_password` first.

>>> hide_password("postgresql://ml:secret@db/registry")
'postgresql://ml:***@db/registry'
>>> hide_password("postgresql://ml@db/registry")
'postgresql://ml@db/registry'
"""

from __future__ import annotations

import re

from forgeml.config.spec import Spec

__all__ = ["hide_password", "redacted_spec"]

_PASSWORD = re.compile(r"(//[^:/@]*:)[^@/]*@")


def hide_password(uri: str) -> str:
    """``uri`` with the password of its ``user:password@`` part replaced by ``***``."""
    return _PASSWORD.sub(r"\1***@", uri)


def redacted_spec(spec: Spec) -> Spec:
    """A copy of ``spec`` whose URLs (registry, data sources, the study storage) hide
    their passwords."""
    data = spec.data.model_copy(
        update={
            "source": hide_password(spec.data.source) if spec.data.source else None,
            "test_source": hide_password(spec.data.test_source) if spec.data.test_source else None,
        }
    )
    registry = spec.registry.model_copy(update={"uri": hide_password(spec.registry.uri)})
    storage = spec.tuning.storage
    tuning = spec.tuning.model_copy(update={"storage": hide_password(storage) if storage else None})
    copy = spec.model_copy(update={"data": data, "registry": registry, "tuning": tuning})
    copy.base_dir = spec.base_dir
    return copy
