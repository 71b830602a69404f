"""Bench: latency and throughput of each served version, REST and gRPC, native vs TF-TRT.

A cell (model, version, protocol, batch size, concurrency) is measured by the load generator
(``serve.load``). The client's CPU time per request gives its own ceiling (processes / CPU
seconds per request): a cell whose throughput comes near it is marked client-bound, and a cell
with any failed request is invalid, never a figure. Speed-ups are between versions whose
answers proved them to be the artifacts their bundles hold (``serve.identity``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

# A cell whose throughput reaches this share of the client's own ceiling measured the client.
CLIENT_BOUND = 0.8


@dataclass
class Cell:
    model: str
    version: str  # "2", or a label
    profile: str
    # native or tftrt: native versions are the baseline of speed-ups.
    converter: str
    protocol: str
    batch: int
    concurrency: int
    requests: int = 0
    errors: int = 0
    first_error: str = ""
    wall_s: float = 0.0
    throughput_rps: float = 0.0
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    client_ceiling_rps: float = 0.0
    client_bound: bool = False
    speedup: float | None = None  # throughput over the native version's, same cell
    # Key (12 digits) of the artifact the version answered as, before it was measured
    # (serve.identity); a cell without one never gets a speed-up.
    artifact: str = ""
    latencies_ms: list[float] = field(default_factory=list, repr=False)

    @property
    def valid(self) -> bool:
        return self.requests > 0 and self.errors == 0

    def summary(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("latencies_ms")
        data["valid"] = self.valid
        return data

    @classmethod
    def from_summary(cls, data: dict[str, Any]) -> Cell:
        return cls(**{k: v for k, v in data.items() if k != "valid"})

    @property
    def baseline(self) -> bool:
        return self.converter == "native"


def fill(cell: Cell, raw: dict[str, Any]) -> Cell:
    # NumPy only here, for cost: the sweep summary, a Hydra callback every tftrt-build run
    # creates, imports this module for Cell and speedups and must not pay for NumPy.
    import numpy as np

    lat = np.asarray(raw["latencies_ms"])
    cell.latencies_ms = [round(x, 4) for x in raw["latencies_ms"]]
    cell.requests = len(lat)
    cell.errors = raw["errors"]
    cell.first_error = raw["first_error"]
    cell.wall_s = raw["wall_s"]
    if len(lat):
        cell.p50_ms, cell.p90_ms, cell.p99_ms = (float(x) for x in np.percentile(lat, [50, 90, 99]))
        cell.throughput_rps = (len(lat) - cell.errors) / cell.wall_s if cell.wall_s else 0.0
    per_request = raw["client_cpu_s"] / max(len(lat), 1)
    cell.client_ceiling_rps = raw["processes"] / per_request if per_request > 0 else math.inf
    cell.client_bound = cell.throughput_rps >= CLIENT_BOUND * cell.client_ceiling_rps
    return cell


def speedups(cells: list[Cell]) -> None:
    """Throughput of each valid cell over the native version's in the same conditions, both
    measured on versions that answered as their own artifacts.

    When several native versions share those conditions (a second profile that also serves the
    SavedModel as-is), the first in the table is the baseline, so its row reads 1.00x.
    """
    base: dict[tuple[str, str, int, int], Cell] = {}
    for c in cells:
        if c.baseline and c.valid and c.artifact:
            base.setdefault((c.model, c.protocol, c.batch, c.concurrency), c)
    for c in cells:
        ref = base.get((c.model, c.protocol, c.batch, c.concurrency))
        if c.valid and c.artifact and ref is not None and ref.throughput_rps:
            c.speedup = c.throughput_rps / ref.throughput_rps


def markdown(cells: list[Cell]) -> str:
    lines = [
        "| model | version | profile | protocol | batch | concurrency | p50 ms | p90 ms | "
        "p99 ms | req/s | speed-up | client ceiling req/s | note |",
        "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for c in cells:
        note = "" if c.valid else f"INVALID: {c.errors} failed ({c.first_error})"
        if c.valid and c.client_bound:
            note = "client-bound: not the server's limit"
        speed = f"{c.speedup:.2f}x" if c.speedup is not None else "-"
        lines.append(
            f"| {c.model} | {c.version} | {c.profile} | {c.protocol} | {c.batch} | "
            f"{c.concurrency} | {c.p50_ms:.2f} | {c.p90_ms:.2f} | {c.p99_ms:.2f} | "
            f"{c.throughput_rps:.0f} | {speed} | {c.client_ceiling_rps:.0f} | {note} |"
        )
    return "\n".join(lines) + "\n"


def plot(cells: list[Cell], path: Any) -> None:
    """p50 latency against throughput, a line per version, a panel per protocol."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    protocols = sorted({c.protocol for c in cells})
    fig, axes = plt.subplots(1, len(protocols), figsize=(6 * len(protocols), 4.5), squeeze=False)
    for ax, protocol in zip(axes[0], protocols, strict=True):
        series: dict[str, list[Cell]] = {}
        for c in cells:
            if c.protocol == protocol and c.valid:
                series.setdefault(f"{c.model} v{c.version} {c.profile} b{c.batch}", []).append(c)
        for name, points in sorted(series.items()):
            points.sort(key=lambda c: c.concurrency)
            ax.plot(
                [c.throughput_rps for c in points],
                [c.p50_ms for c in points],
                marker="o",
                label=name,
            )
            for c in points:
                ax.annotate(str(c.concurrency), (c.throughput_rps, c.p50_ms), fontsize=7)
        ax.set_title(f"{protocol.upper()} (labels: concurrency)")
        ax.set_xlabel("throughput, requests/s")
        ax.set_ylabel("p50 latency, ms")
        ax.grid(alpha=0.3)
        if series:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
