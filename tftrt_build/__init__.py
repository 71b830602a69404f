"""tftrt-build: declarative, cached builds of TF-TRT models and TensorFlow Serving bundles.

The pipeline runs config -> resolve -> plan -> build -> emit; each stage is a module of its own.
"""

from __future__ import annotations

from tftrt_build.errors import (
    CacheError,
    CapabilityError,
    ConfigError,
    LockError,
    SourceError,
    StageError,
    TftrtError,
)

__version__ = "0.1.0"
__all__ = [
    "CacheError",
    "CapabilityError",
    "ConfigError",
    "LockError",
    "SourceError",
    "StageError",
    "TftrtError",
    "__version__",
]
