"""Keras ResNet50. ``weights=None`` (random init from the build's seed) works offline;
``weights="imagenet"`` downloads the ImageNet weights through Keras on first use."""

from __future__ import annotations

from typing import Any


def build(weights: str | None = None, classes: int = 1000, image_size: int = 224) -> Any:
    import keras

    return keras.applications.ResNet50(
        weights=weights,
        classes=classes,
        input_shape=(image_size, image_size, 3),
        classifier_activation="softmax",
    )
