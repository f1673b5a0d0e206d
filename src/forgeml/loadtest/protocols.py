"""The request formats of forgeml's prediction server, and the path each one is served on.

=========  ===========================  =================================================
protocol   default path                 body
=========  ===========================  =================================================
predict    ``/predict``                 ``{"records": [{col: value, ...}, ...]}``
v2         ``/v2/models/MODEL/infer``   Open Inference Protocol v2, one input per column,
                                        ``"parameters": {"content_type": "pd"}``
mlflow     ``/invocations``             ``{"dataframe_split": {"columns": [...], "data": [...]}}``
=========  ===========================  =================================================

>>> ServingProtocol("v2").default_path("churn")
'/v2/models/churn/infer'
>>> ServingProtocol.mlflow.default_path()
'/invocations'
"""

from __future__ import annotations

from enum import StrEnum
from urllib.parse import quote

from forgeml.errors import UsageError

__all__ = ["ServingProtocol"]


class ServingProtocol(StrEnum):
    """A request format the prediction server understands."""

    predict = "predict"
    v2 = "v2"
    mlflow = "mlflow"

    @classmethod
    def parse(cls, value: str) -> ServingProtocol:
        """The protocol named ``value``, or a :class:`UsageError` listing the choices.

        >>> ServingProtocol.parse("MLflow")
        <ServingProtocol.mlflow: 'mlflow'>
        >>> ServingProtocol.parse("grpc")
        Traceback (most recent call last):
        ...
        forgeml.errors.UsageError: --protocol: unknown protocol 'grpc' (choose predict, v2 or mlflow)
        """
        try:
            return cls(value.strip().lower())
        except ValueError:
            raise UsageError(
                f"--protocol: unknown protocol {value!r} (choose predict, v2 or mlflow)"
            ) from None

    def default_path(self, model: str | None = None) -> str:
        """The path this protocol is served on; ``v2`` needs the ``model`` name.

        >>> ServingProtocol.v2.default_path()
        Traceback (most recent call last):
        ...
        forgeml.errors.UsageError: the v2 protocol needs a model name: pass --model NAME or --path
        """
        if self is ServingProtocol.v2:
            if not model:
                raise UsageError("the v2 protocol needs a model name: pass --model NAME or --path")
            return f"/v2/models/{quote(model, safe='')}/infer"
        return _PATHS[self]


_PATHS = {ServingProtocol.predict: "/predict", ServingProtocol.mlflow: "/invocations"}
