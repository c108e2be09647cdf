"""Typed errors of the MLflow bridge. Each keeps the fields that explain it."""

from __future__ import annotations

from registry.errors import CairnError

__all__ = ["MlflowBridgeError", "MlflowMissingError", "MlflowUnavailableError", "ModelLogError"]


class MlflowBridgeError(CairnError):
    """Base class of the MLflow bridge's errors."""


class MlflowMissingError(MlflowBridgeError):
    """MLflow is not installed in this environment."""

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(f"the MLflow bridge needs mlflow: pip install 'cairn[mlflow]' ({detail})")


class MlflowUnavailableError(MlflowBridgeError):
    """The MLflow tracking server or store cannot be reached or refused a request."""

    def __init__(self, uri: str, detail: str) -> None:
        self.uri, self.detail = uri, detail
        super().__init__(f"MLflow at {uri} is unavailable: {detail}")


class ModelLogError(MlflowBridgeError):
    """A run's model could not be logged with an MLflow flavour."""

    def __init__(self, run_id: str, detail: str) -> None:
        self.run_id, self.detail = run_id, detail
        super().__init__(f"cannot log the model of run {run_id} to MLflow: {detail}")
