"""HashEE (BERT and BART), a self-contained Hub-code folder. The package exports the names its configuration and
modeling files list in their `__all__`, and the two modules."""

from . import configuration_hashee, modeling_hashee
from .configuration_hashee import *  # noqa: F403
from .modeling_hashee import *  # noqa: F403

__all__ = [*configuration_hashee.__all__, *modeling_hashee.__all__]
