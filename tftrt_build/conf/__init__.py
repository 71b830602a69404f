"""Built-in config options (a package so Hydra can find them as pkg://tftrt_build.conf)."""
