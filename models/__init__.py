"""Export scripts of the built-in models (installed with tftrt-build as tftrt_build.models)."""
