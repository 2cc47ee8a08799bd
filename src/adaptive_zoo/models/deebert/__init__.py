"""DeeBERT, a self-contained Hub-code folder. The package exports the names its configuration and modeling files list
in their `__all__`, and the two modules."""

from . import configuration_deebert, modeling_deebert
from .configuration_deebert import *  # noqa: F403
from .modeling_deebert import *  # noqa: F403

__all__ = [*configuration_deebert.__all__, *modeling_deebert.__all__]
