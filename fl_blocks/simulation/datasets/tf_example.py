"""Parses serialized ``tf.train.Example`` protos without TensorFlow.

Uses the TF-free copy of the proto that tensorflow-datasets ships
(``tensorflow_datasets/proto/tf_example_generated_pb2.py``, exposed there as
``tensorflow_datasets.proto.tf_example_pb2``). Importing that attribute the usual
way runs ``tensorflow_datasets/__init__`` (about 150 extra modules, ~0.3 s), so
when tensorflow-datasets is not already imported the two generated files are
executed directly from their installed location, with their one package import
(``from tensorflow_datasets.proto import tf_feature_generated_pb2``) answered by
the sibling module. Nothing is added to ``sys.modules``; protobuf caches message
classes per descriptor, so a later real ``import tensorflow_datasets`` yields the
very same ``Example`` class.

>>> try:
...     name = example_class().__name__
... except ImportError:  # tensorflow-datasets not installed
...     name = "Example"
>>> name
'Example'
"""

from __future__ import annotations

import builtins
import functools
import importlib.util
import pathlib
import sys
import types
from typing import Any

__all__ = ["example_class", "MISSING_TFDS"]

MISSING_TFDS = (
    'reading TFF\'s EMNIST file needs tensorflow-datasets (its TF-free tf.train.Example proto): pip install "fl_blocks[data]"'
)
_PACKAGE = "tensorflow_datasets.proto"


def _run_generated(path: pathlib.Path, name: str, siblings: dict[str, types.ModuleType]) -> types.ModuleType:
    module = types.ModuleType(name)
    real_import = builtins.__import__

    def package_import(target: str, globals_: Any = None, locals_: Any = None, fromlist: Any = (), level: int = 0) -> Any:
        if target == _PACKAGE and level == 0 and fromlist and set(fromlist) <= set(siblings):
            return types.SimpleNamespace(**siblings)
        return real_import(target, globals_, locals_, fromlist, level)

    module.__dict__.update(__file__=str(path), __builtins__=dict(vars(builtins), __import__=package_import))
    exec(compile(path.read_text(encoding="utf-8"), str(path), "exec"), module.__dict__)
    return module


@functools.lru_cache(maxsize=1)
def example_class() -> Any:
    """The ``tf.train.Example`` message class; `ImportError` naming the fix if tensorflow-datasets is absent."""
    loaded = sys.modules.get(f"{_PACKAGE}.tf_example_generated_pb2")
    if loaded is not None:
        return loaded.Example
    try:
        spec = importlib.util.find_spec("tensorflow_datasets")  # locates, does not import
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(MISSING_TFDS)
    folder = pathlib.Path(list(spec.submodule_search_locations)[0]) / "proto"
    try:
        feature = _run_generated(folder / "tf_feature_generated_pb2.py", f"{_PACKAGE}.tf_feature_generated_pb2", {})
        example = _run_generated(
            folder / "tf_example_generated_pb2.py", f"{_PACKAGE}.tf_example_generated_pb2",
            {"tf_feature_generated_pb2": feature},
        )
    except (OSError, ImportError) as error:
        raise ImportError(f"{MISSING_TFDS} (found tensorflow-datasets at {folder.parent} but: {error})") from error
    return example.Example
