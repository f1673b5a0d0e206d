"""Names that leave forgeml: Kubernetes object names, label values, image references.

A model name (``^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$``) is not always a valid Kubernetes name
(lowercase, no ``_`` or ``.``, at most 63 characters, a Service name starts with a letter),
so objects are named ``forgeml-<slug>``; the exact model reference is kept in an
annotation. Image references follow the grammar of ``docker``/OCI distribution, and must
name a tag or a digest other than ``latest`` so a Deployment always runs what was built.

>>> app_name("Churn_v2.1")
'forgeml-churn-v2-1-ff950d'
>>> label_value("churn.")
'churn'
>>> parse_image("registry.example.com:5000/team/churn:3")
ImageRef(repository='registry.example.com:5000/team/churn', tag='3', digest=None)
>>> parse_image("churn")
Traceback (most recent call last):
...
forgeml.errors.UsageError: --image 'churn': name a tag or a digest (e.g. churn:1); an untagged image means 'latest', which changes under a running Deployment
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from forgeml.errors import UsageError

__all__ = ["ImageRef", "app_name", "check_namespace", "label_value", "parse_image"]

_PREFIX = "forgeml-"
_MAX_LABEL = 63

# distribution/reference grammar (github.com/distribution/reference, regexp.go).
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_IMAGE = re.compile(
    rf"(?P<repo>(?:(?P<domain>{_DOMAIN})/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)"
    rf"(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?"
)
_DNS_LABEL = re.compile(r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?")


@dataclass(frozen=True)
class ImageRef:
    """A parsed container image reference; at least one of ``tag`` and ``digest`` is set."""

    repository: str
    tag: str | None
    digest: str | None

    def __str__(self) -> str:
        tag = f":{self.tag}" if self.tag else ""
        digest = f"@{self.digest}" if self.digest else ""
        return f"{self.repository}{tag}{digest}"


def app_name(model: str) -> str:
    """The name of every Kubernetes object serving ``model``: ``forgeml-<slug>``, a valid
    DNS-1035 label (Service names need one). When the slug had to change the name
    (case, ``_``, ``.``, length), a short hash of the exact name is appended, so models
    whose names differ only there (``Churn``, ``churn``) never share objects.

    >>> app_name("fraud"), app_name("Churn_v2.1")
    ('forgeml-fraud', 'forgeml-churn-v2-1-ff950d')
    >>> len(app_name("x" * 64))
    63
    """
    slug = re.sub(r"[^a-z0-9]+", "-", model.lower()).strip("-") or "model"
    room = _MAX_LABEL - len(_PREFIX)
    if slug != model or len(slug) > room:
        digest = hashlib.sha256(model.encode()).hexdigest()[:6]
        slug = f"{slug[: room - 7].rstrip('-')}-{digest}"
    return f"{_PREFIX}{slug}"


def label_value(text: str) -> str:
    """``text`` as a Kubernetes label value: at most 63 characters of ``[A-Za-z0-9_.-]``,
    starting and ending with a letter or digit (model names already start with one).

    >>> label_value("a" * 70) == "a" * 63
    True
    """
    value = re.sub(r"[^A-Za-z0-9_.-]", "-", text)[:_MAX_LABEL]
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", value)


def parse_image(image: str) -> ImageRef:
    """Parse and check ``--image``: a valid reference with a tag or a digest, not ``latest``.

    >>> str(parse_image("ghcr.io/acme/churn@sha256:" + "a" * 64))[:30]
    'ghcr.io/acme/churn@sha256:aaaa'
    >>> parse_image("Churn:1")
    Traceback (most recent call last):
    ...
    forgeml.errors.UsageError: --image 'Churn:1': not a valid image reference (lowercase [registry/]name[:tag][@digest], e.g. registry.example.com/team/churn:3)
    """
    match = _IMAGE.fullmatch(image) if isinstance(image, str) else None
    if match is None or len(match.group("repo")) > 255:
        raise UsageError(
            f"--image {image!r}: not a valid image reference (lowercase "
            "[registry/]name[:tag][@digest], e.g. registry.example.com/team/churn:3)"
        )
    tag, digest = match.group("tag"), match.group("digest")
    if tag is None and digest is None:
        raise UsageError(
            f"--image {image!r}: name a tag or a digest (e.g. {image}:1); an untagged image "
            "means 'latest', which changes under a running Deployment"
        )
    if tag == "latest" and digest is None:
        raise UsageError(
            f"--image {image!r}: 'latest' changes under a running Deployment; "
            "use a version tag or a digest"
        )
    return ImageRef(match.group("repo"), tag, digest)


def check_namespace(namespace: str) -> str:
    """Return ``namespace`` if it is a valid Kubernetes namespace (a DNS-1123 label).

    >>> check_namespace("ml-serving")
    'ml-serving'
    >>> check_namespace("ML")
    Traceback (most recent call last):
    ...
    forgeml.errors.UsageError: --namespace 'ML': a namespace is at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit
    """
    if not isinstance(namespace, str) or not _DNS_LABEL.fullmatch(namespace):
        raise UsageError(
            f"--namespace {namespace!r}: a namespace is at most 63 lowercase letters, digits "
            "and '-', starting and ending with a letter or digit"
        )
    return namespace
