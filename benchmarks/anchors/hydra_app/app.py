"""The floor of any Hydra command line: a minimal app over four config groups that prints its
config. benchmarks/bench.py runs it beside tftrt-build; tftrt-build cannot start faster than
Hydra composing a config of the same shape (twice, as every Hydra app does: once to learn
``hydra.mode``, once to run)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig, OmegaConf


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    print(OmegaConf.to_yaml(cfg))


if __name__ == "__main__":
    main()
