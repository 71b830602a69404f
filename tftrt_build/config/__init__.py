"""config: the user's configs become one checked ``BuildRequest``, or one ``ConfigError``.

Owns the typed schema (``schema``), loading the options a target lists (``options``), turning
Hydra's and OmegaConf's errors into one line (``explain``), where a config's paths point
(``paths``), what a profile means for TF-TRT (``profiles``), every rule that can refuse a
model, profile or target (``checks``), expanding a target into artifacts (``resolve``,
``request``) and whether the user's values could set Hydra's run mode (``runmode``). Nothing
here writes a file or imports TensorFlow.

May import: ``tftrt_build.errors`` (and Hydra, OmegaConf, PyYAML).
"""
