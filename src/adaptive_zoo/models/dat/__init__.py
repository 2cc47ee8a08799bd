"""The Depth-Adaptive Transformer, a self-contained Hub-code folder. The package exports the names its configuration
and modeling files list in their `__all__`, and the two modules."""

from . import configuration_dat, modeling_dat
from .configuration_dat import *  # noqa: F403
from .modeling_dat import *  # noqa: F403

__all__ = [*configuration_dat.__all__, *modeling_dat.__all__]
