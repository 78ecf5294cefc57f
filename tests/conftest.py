"""Shared fixtures: tiny data in real formats, configs for seconds-long runs, one Ray per session."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

# Train's controller polls workers for reports; at its 2 s default short test epochs would wait on it.
os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.2")
# Caches (noise, pre-training) never in the user's home, even for fixtures that run before the
# per-test one below (module-scoped ones do).
os.environ["NOISYLAB_CACHE"] = tempfile.mkdtemp(prefix="noisylab-test-cache-")


def _digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8×8 digits (real data, shipped with the package) as uint8 16×16 images."""
    from sklearn.datasets import load_digits

    d = load_digits()
    img = (d.images * 255.0 / 16.0).round().astype(np.uint8)  # (1797, 8, 8), 0..16 → 0..255
    img = img.repeat(2, axis=1).repeat(2, axis=2)  # (1797, 16, 16): room for a 4-px crop
    return img, d.target.astype(np.int64)


@pytest.fixture(scope="session")
def digits_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The digits written as a MedMNIST-layout .npz (train: first 1,400, test: the rest)."""
    img, y = _digits()
    path = tmp_path_factory.mktemp("digits") / "digits.npz"
    np.savez(
        path,
        train_images=img[:1400],
        train_labels=y[:1400, None],
        test_images=img[1400:],
        test_labels=y[1400:, None],
    )
    return path


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOISYLAB_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    """One Ray instance for the whole test session (starting Ray costs seconds)."""
    import ray

    if not ray.is_initialized():
        ray.init(
            num_cpus=2,
            object_store_memory=200 * 1024**2,
            include_dashboard=False,
            logging_level=logging.WARNING,
            log_to_driver=True,
        )
    yield
    ray.shutdown()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `own_ray` start a Ray cluster of their own (in a subprocess): they run first, before
    any test starts the session's Ray, so that two Ray instances never share this machine's cores."""
    items.sort(key=lambda item: item.get_closest_marker("own_ray") is None)
