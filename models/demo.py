"""The embedded default model: a small image classifier, random weights from a fixed seed.

Small enough to export in a few seconds on a CPU, shaped like the real thing (an image in,
class probabilities out) so every stage of a build, a bundle and a server can be exercised.
"""

from __future__ import annotations

from typing import Any


def build(image_size: int = 64, classes: int = 10, width: int = 16) -> Any:
    import keras
    from keras import layers

    image = keras.Input((image_size, image_size, 3), name="image")
    x = layers.Conv2D(width, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(image)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    for i, filters in enumerate((width, width * 2)):
        shortcut = layers.Conv2D(filters, 1, strides=2, name=f"block{i}_proj")(x)
        y = layers.Conv2D(filters, 3, strides=2, padding="same", name=f"block{i}_conv1")(x)
        y = layers.BatchNormalization(name=f"block{i}_bn1")(y)
        y = layers.ReLU(name=f"block{i}_relu1")(y)
        y = layers.Conv2D(filters, 3, padding="same", name=f"block{i}_conv2")(y)
        x = layers.ReLU(name=f"block{i}_out")(layers.Add(name=f"block{i}_add")([shortcut, y]))
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    probabilities = layers.Dense(classes, activation="softmax", name="probabilities")(x)
    return keras.Model(image, probabilities, name="demo")
