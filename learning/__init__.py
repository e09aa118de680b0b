"""Federated learning on fcore: models, federated averaging, evaluation, and data.

Importing `learning` does not import TensorFlow."""

from learning import data  # noqa: F401
from learning.models import BatchOutput, Model, TrainableModel


def __getattr__(name):
    # The builders import TensorFlow-facing modules; load them on first use.
    lazy = {
        "from_keras_model": ("learning.keras_model", "from_keras_model"),
        "from_compiled_keras_model": ("learning.keras_model", "from_compiled_keras_model"),
        "build_federated_averaging_process": ("learning.fedavg",
                                              "build_federated_averaging_process"),
        "build_federated_evaluation": ("learning.evaluation", "build_federated_evaluation"),
        "assign_to_keras": ("learning.weights", "assign_to_keras"),
        "RoundReport": ("learning.fedavg", "RoundReport"),
        "optimizers": ("learning.optimizers", None),
        "programs": ("learning.programs", None),
        "algorithms": ("learning.algorithms", None),
        "LearningProcess": ("learning.algorithms", "LearningProcess"),
        "LearningProcessOutput": ("learning.algorithms", "LearningProcessOutput"),
        "privacy": ("learning.privacy", None),
        "robust_aggregator": ("learning.aggregation", "robust_aggregator"),
        "dp_aggregator": ("learning.aggregation", "dp_aggregator"),
        "secure_aggregator": ("learning.aggregation", "secure_aggregator"),
    }
    if name not in lazy:
        raise AttributeError(f"module 'learning' has no attribute {name!r}")
    import importlib
    module_name, attribute = lazy[name]
    module = importlib.import_module(module_name)
    return module if attribute is None else getattr(module, attribute)


__all__ = ["BatchOutput", "LearningProcess", "LearningProcessOutput", "Model", "TrainableModel",
           "algorithms", "assign_to_keras", "dp_aggregator", "privacy", "robust_aggregator",
           "secure_aggregator",
           "build_federated_averaging_process", "build_federated_evaluation", "data",
           "from_compiled_keras_model", "from_keras_model", "optimizers", "programs", "RoundReport"]
