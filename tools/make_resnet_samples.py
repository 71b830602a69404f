"""Write models/samples/resnet_jpeg.npz: sample inputs for the built-in ``resnet`` model.

The blog post's ResNet SavedModel takes JPEG bytes (input ``image_bytes``, a string tensor of
shape [-1]), which no random generator can make, so warm-up records, verification and TF-TRT
engine builds read its samples from this file. The images are synthetic (gradients, stripes,
discs, a checkerboard) made from fixed formulas, so nothing here comes from a data set, and
encoded with TensorFlow's own JPEG encoder, the decoder the model runs being TensorFlow's too.

Run once, from the repository root, and commit the result:

    .venv/bin/python tools/make_resnet_samples.py

The output is deterministic for a given TensorFlow (libjpeg-turbo) build; the file is small
(a few KB), and its digest is part of the cache keys of every stage that reads it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "models" / "samples" / "resnet_jpeg.npz"
SIZE = 96


def images() -> list[np.ndarray]:
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64) / (SIZE - 1)
    disc = ((x - 0.5) ** 2 + (y - 0.5) ** 2 < 0.1).astype(np.float64)
    checker = ((np.floor(x * 8) + np.floor(y * 8)) % 2).astype(np.float64)
    stripes = 0.5 + 0.5 * np.sin(x * 6 * np.pi)
    planes = [
        (x, y, 1 - x),  # a colour gradient
        (stripes, stripes * y, 0.3 * np.ones_like(x)),  # stripes
        (disc, 0.2 + 0.6 * disc * x, 1 - disc),  # a disc on a plain ground
        (checker, checker, 0.5 * checker),  # a checkerboard
    ]
    return [(np.stack(p, axis=-1) * 255).round().astype(np.uint8) for p in planes]


def main() -> int:
    import tensorflow as tf

    encoded = [bytes(tf.io.encode_jpeg(img, quality=90).numpy()) for img in images()]
    for data in encoded:
        decoded = tf.io.decode_jpeg(data).numpy()
        assert decoded.shape == (SIZE, SIZE, 3), decoded.shape
        # numpy's fixed-width bytes drop trailing NUL bytes; a JPEG ends with FF D9.
        assert data.endswith(b"\xff\xd9")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT, image_bytes=np.array(encoded, dtype=np.bytes_))
    print(f"{OUT}: {len(encoded)} JPEG images, {OUT.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
