"""The method registry: one module per method, each registering itself (and its models with the Auto classes)
on import. Adding a method is adding a module here and its Hub-code folder under `models/` (ARCHITECTURE.md)."""

# Each module registers its method on import; the order is the order `adaptive-zoo train --help` lists them in.
from . import deebert  # noqa: F401, I001
from . import adapler  # noqa: F401
from . import hashee  # noqa: F401
from . import dat  # noqa: F401
from .base import (  # noqa: E402
    METHODS,
    Method,
    ModelFamily,
    OperatingPoint,
    RecipeRun,
    method_for_model_type,
    register_method,
)

__all__ = ["METHODS", "Method", "ModelFamily", "OperatingPoint", "RecipeRun", "method_for_model_type",
           "register_method"]
