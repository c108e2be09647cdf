"""Fine-tune a zoo backbone on an image folder; every fine-tune is a registry run.

    import zoo
    result = zoo.finetune("resnet50.a1_in1k", "data/defects", epochs=10, project="defects")
    print(result.run_id, result.best_metric, result.checkpoint)

``zoo.finetune`` is this package, made callable: calling it calls :func:`finetune`, while
``zoo.finetune.FinetuneResult`` and ``zoo.finetune.data`` stay reachable as module
attributes (a plain function bound to that name would hide the package). Importing it loads
neither torch nor timm; ``tfhub:`` models go to :func:`zoo.keras.finetune`.
"""

import sys
import types

from zoo.finetune import data as data
from zoo.finetune._api import finetune as finetune
from zoo.finetune._result import FinetuneResult as FinetuneResult

__all__ = ["FinetuneResult", "data", "finetune"]


class _CallableModule(types.ModuleType):
    """This package's class: ``zoo.finetune(...)`` is ``zoo.finetune.finetune(...)``."""

    def __call__(self, *args, **kwargs) -> FinetuneResult:
        return finetune(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
