"""What to deploy and how: the checked options of ``forgeml deploy k8s``.

:class:`ScalingOptions` holds the user's choices before the model is known and checks
them (so bad input fails before the registry is opened or anything is written);
:meth:`ScalingOptions.for_model` adds the resolved model and returns the
:class:`DeploySettings` every renderer reads.

Scaling is either automatic (a HorizontalPodAutoscaler between ``min_replicas`` and
``max_replicas``; the Deployment leaves ``replicas`` unset so that ``kubectl apply`` does not
reset what the autoscaler chose) or fixed (``replicas``, no autoscaler).

>>> settings = ScalingOptions().for_model("churn", 3)
>>> settings.app, settings.image, settings.min_replicas, settings.max_replicas
('forgeml-churn', 'forgeml-churn:3', 2, 10)
>>> ScalingOptions(replicas=3, max_replicas=5).check()
Traceback (most recent call last):
...
forgeml.errors.UsageError: --replicas fixes the number of replicas; it cannot be combined with --max-replicas (which configure the autoscaler)
"""

from __future__ import annotations

from dataclasses import dataclass

from forgeml.deploy.names import app_name, check_namespace, label_value, parse_image
from forgeml.errors import UsageError

__all__ = ["DeploySettings", "ScalingOptions"]

_DEFAULT_MIN = 2
_DEFAULT_MAX = 10
_DEFAULT_CPU = 70


@dataclass(frozen=True)
class DeploySettings:
    """Everything the renderers need; build it with :meth:`ScalingOptions.for_model`."""

    model: str
    version: int
    image: str
    replicas: int | None
    min_replicas: int
    max_replicas: int
    cpu_target: int
    namespace: str | None
    service_monitor: bool
    #: sha256 of the model's manifest (which lists every file's sha256): the model's identity.
    model_sha256: str | None = None

    @property
    def app(self) -> str:
        """The name of every Kubernetes object, ``forgeml-<slug>``."""
        return app_name(self.model)

    @property
    def ref(self) -> str:
        """The exact model reference, ``name@version``."""
        return f"{self.model}@{self.version}"

    @property
    def autoscaling(self) -> bool:
        """True when an autoscaler sets the number of replicas."""
        return self.replicas is None

    @property
    def model_label(self) -> str:
        """The model name as a label value."""
        return label_value(self.model)


def _positive(option: str, value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise UsageError(f"{option} must be a whole number of at least 1, not {value!r}")


@dataclass(frozen=True)
class ScalingOptions:
    """The user's choices; ``None`` means the default (or, for ``image``, one derived from
    the model: ``forgeml-<slug>:<version>``)."""

    image: str | None = None
    replicas: int | None = None
    min_replicas: int | None = None
    max_replicas: int | None = None
    cpu_target: int | None = None
    namespace: str | None = None
    service_monitor: bool = False

    def check(self) -> ScalingOptions:
        """Raise :class:`UsageError` naming the first bad option; return ``self``."""
        for option, value in (
            ("--replicas", self.replicas),
            ("--min-replicas", self.min_replicas),
            ("--max-replicas", self.max_replicas),
            ("--cpu-target", self.cpu_target),
        ):
            _positive(option, value)
        if self.replicas is not None:
            given = [
                option
                for option, value in (
                    ("--min-replicas", self.min_replicas),
                    ("--max-replicas", self.max_replicas),
                    ("--cpu-target", self.cpu_target),
                )
                if value is not None
            ]
            if given:
                raise UsageError(
                    f"--replicas fixes the number of replicas; it cannot be combined with "
                    f"{', '.join(given)} (which configure the autoscaler)"
                )
        self.bounds()
        if self.cpu_target is not None and self.cpu_target > 100:
            raise UsageError(
                f"--cpu-target is a percentage of the CPU request, from 1 to 100, "
                f"not {self.cpu_target}"
            )
        if self.image is not None:
            parse_image(self.image)
        if self.namespace is not None:
            check_namespace(self.namespace)
        return self

    def bounds(self) -> tuple[int, int]:
        """The autoscaler's ``(min, max)`` replicas. A default bound gives way to an explicit
        one (``--min-replicas 12`` alone means 12..12); two explicit bounds must be in order.

        >>> ScalingOptions(min_replicas=12).bounds(), ScalingOptions(max_replicas=1).bounds()
        ((12, 12), (1, 1))
        >>> ScalingOptions(min_replicas=4, max_replicas=3).bounds()
        Traceback (most recent call last):
        ...
        forgeml.errors.UsageError: --min-replicas (4) is greater than --max-replicas (3)
        """
        if self.max_replicas is None:
            low = _DEFAULT_MIN if self.min_replicas is None else self.min_replicas
            return low, max(low, _DEFAULT_MAX)
        if self.min_replicas is None:
            return min(_DEFAULT_MIN, self.max_replicas), self.max_replicas
        low = self.min_replicas
        if low > self.max_replicas:
            raise UsageError(
                f"--min-replicas ({low}) is greater than --max-replicas ({self.max_replicas})"
            )
        return low, self.max_replicas

    def for_model(
        self, model: str, version: int, model_sha256: str | None = None
    ) -> DeploySettings:
        """The settings for ``model`` at ``version``, after :meth:`check`."""
        self.check()
        low, high = self.bounds()
        image = self.image or f"{app_name(model)}:{version}"
        return DeploySettings(
            model=model,
            version=version,
            image=str(parse_image(image)),
            replicas=self.replicas,
            min_replicas=low,
            max_replicas=high,
            cpu_target=_DEFAULT_CPU if self.cpu_target is None else self.cpu_target,
            namespace=self.namespace,
            service_monitor=self.service_monitor,
            model_sha256=model_sha256,
        )
