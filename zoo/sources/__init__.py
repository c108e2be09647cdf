"""Built-in model sources. Importing a source module registers it (``@register_source``);
each imports its framework only when first used, so importing them is cheap."""

from zoo.sources import catalog as catalog
from zoo.sources import tfhub as tfhub
from zoo.sources import timm as timm

__all__ = ["timm"]
