"""Fine-tune a zoo backbone on an image folder; every fine-tune is a registry run.

    import zoo
    result = zoo.finetune("resnet50.a1_in1k", "data/defects", epochs=10, project="defects")
    print(result.run_id, result.best_metric, result.checkpoint)

:func:`finetune` (``zoo.finetune``) checks one :class:`FinetuneConfig` and hands it to the
backend of the model's framework (:mod:`zoo.training.backends`): the PyTorch loop
(:mod:`~zoo.training.loop`, :mod:`~zoo.training.strategies`, :mod:`~zoo.training.ddp`...)
or Keras ``fit``. Importing this package loads neither torch nor TensorFlow.
"""

from zoo.training._finetune import finetune as finetune
from zoo.training._result import FinetuneResult as FinetuneResult
from zoo.training.config import FinetuneConfig as FinetuneConfig

__all__ = ["FinetuneConfig", "FinetuneResult", "finetune"]
