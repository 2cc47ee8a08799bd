"""AdapLeR, a self-contained Hub-code folder. The package exports the names its configuration and modeling files list
in their `__all__`, and the two modules."""

from . import configuration_adapler, modeling_adapler
from .configuration_adapler import *  # noqa: F403
from .modeling_adapler import *  # noqa: F403

__all__ = [*configuration_adapler.__all__, *modeling_adapler.__all__]
