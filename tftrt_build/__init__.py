"""tftrt-build: declarative, cached builds of TF-TRT models and TensorFlow Serving bundles.

The pipeline is the package listing: ``config`` (configs -> a request) -> ``plan`` -> ``build``
(with ``stages``, ``execute``, ``emit``, ``store``) -> bundle + lock -> ``serve``; ``cli`` is a
thin command per step. ARCHITECTURE.md draws it.
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
