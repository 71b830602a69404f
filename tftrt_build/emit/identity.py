"""``verify/<model>/<version>.json``: what a served version must answer, recorded at build time.

The identity stage runs the built artifact on the model's sample inputs; its record (the
artifact's own outputs, signature and SavedModel fingerprint) is written into the bundle with
what names the artifact (id, convert key, content digest). ``tftrt-verify`` and ``tftrt-bench``
read it back to establish that a server answers with this artifact before they report anything.
"""

from __future__ import annotations

import json
from typing import Any

FOLDER = "verify"
# Bump with the fields below; a reader refuses a record of another format.
FORMAT = 1


def path(model: str, version: int) -> str:
    return f"{FOLDER}/{model}/{version}.json"


def render(record: dict[str, Any], fields: dict[str, Any]) -> str:
    """The stage's record with the fields that name the artifact and version."""
    return json.dumps({**record, **fields, "format": FORMAT}, sort_keys=True) + "\n"


def parse(text: str) -> dict[str, Any]:
    """A record as written by ``render``; ValueError for anything else."""
    doc = json.loads(text)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"not an identity record of format {FORMAT}")
    for key in ("artifact", "key", "inputs", "outputs", "signature", "version", "model"):
        if key not in doc:
            raise ValueError(f"identity record without '{key}'")
    return doc
