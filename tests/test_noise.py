"""Label-noise generators: determinism, rates, IDN against a slow reference, label files, caching."""

from __future__ import annotations

import io
import math
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from noisylab import noise
from noisylab.errors import UserError
from noisylab.noise import NoiseSpec, generators, make


def _random_data(
    n: int, num_classes: int, shape: tuple[int, int, int] = (1, 8, 8), seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)
    labels = rng.integers(0, num_classes, size=n).astype(np.int64)
    return images, labels


def _one_line_user_error(excinfo: pytest.ExceptionInfo[UserError]) -> str:
    message = str(excinfo.value)
    assert "\n" not in message and message
    return message


# ---------------------------------------------------------------------------------------------- spec


@pytest.mark.parametrize(
    ("text", "spec", "canonical"),
    [
        ("idn:0.3", NoiseSpec("idn", rate=0.3), "idn:0.3"),
        ("sym:0.2", NoiseSpec("symmetric", rate=0.2), "sym:0.2"),
        ("symmetric:0.2", NoiseSpec("symmetric", rate=0.2), "sym:0.2"),
        ("pair:0.4", NoiseSpec("pair", rate=0.4), "pair:0.4"),
        ("idn:0", NoiseSpec("idn", rate=0.0), "idn:0.0"),
        ("none", NoiseSpec("none"), "none"),
        (
            "file:/p/CIFAR-10_human.pt#worse_label",
            NoiseSpec("file", path=Path("/p/CIFAR-10_human.pt"), key="worse_label"),
            "file:/p/CIFAR-10_human.pt#worse_label",
        ),
        ("file:labels.npy", NoiseSpec("file", path=Path("labels.npy")), "file:labels.npy"),
    ],
)
def test_spec_parse_and_round_trip(text: str, spec: NoiseSpec, canonical: str) -> None:
    parsed = NoiseSpec.parse(text)
    assert parsed == spec
    assert parsed.label() == canonical
    assert NoiseSpec.parse(parsed.label()) == parsed


def test_spec_label_round_trips_awkward_rates() -> None:
    for rate in (0.123456789012, 1e-7, 0.9999):
        spec = NoiseSpec("pair", rate=rate)
        assert NoiseSpec.parse(spec.label()) == spec


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("idn:1.0", "outside [0, 1)"),
        ("idn:-0.1", "outside [0, 1)"),
        ("idn:1.2", "noise rate 1.2 is outside [0, 1)"),
        ("idn:nan", "outside [0, 1)"),
        ("bogus:0.2", "unknown noise kind"),
        ("idn:abc", "not a number"),
        ("idn", "has no rate"),
        ("none:0.2", "takes no argument"),
        ("file:", "no file path"),
        ("file:x.pt#", "key after '#' is empty"),
    ],
)
def test_spec_parse_rejects(text: str, fragment: str) -> None:
    with pytest.raises(UserError) as excinfo:
        NoiseSpec.parse(text)
    assert fragment in _one_line_user_error(excinfo)


def test_spec_constructor_validates() -> None:
    with pytest.raises(UserError):
        NoiseSpec("file")
    with pytest.raises(UserError):
        NoiseSpec("symmetric", rate=1.0)


# ------------------------------------------------------------------------------------ generators


@pytest.mark.parametrize("kind", ["idn", "symmetric", "pair"])
def test_seeded_determinism(kind: str) -> None:
    images, labels = _random_data(500, 10)
    spec = NoiseSpec.parse(f"{kind}:0.3")

    def run(seed: int) -> np.ndarray:
        return noise.make_noisy_labels(spec, images=images, labels=labels, num_classes=10, seed=seed).labels

    first = run(1)
    assert first.dtype == np.int64 and first.shape == labels.shape
    assert np.array_equal(first, run(1))
    assert not np.array_equal(first, run(2))


def test_idn_realised_rate_is_close_to_target() -> None:
    images, labels = _random_data(4000, 10)
    result = noise.make_noisy_labels(
        NoiseSpec("idn", rate=0.3), images=images, labels=labels, num_classes=10, seed=0
    )
    assert abs(result.realised_rate - 0.3) < 0.03
    assert result.realised_rate == pytest.approx(float(np.mean(result.labels != labels)))


def test_idn_zero_rate_keeps_labels() -> None:
    images, labels = _random_data(200, 10)
    assert np.array_equal(noise.idn_labels(images, labels, num_classes=10, rate=0.0, seed=0), labels)


def test_truncated_normal_stays_in_range_and_has_the_right_mean() -> None:
    draws = noise.truncated_normal(np.random.default_rng(0), mean=0.3, std=0.1, size=20000)
    assert draws.min() >= 0.0 and draws.max() <= 1.0
    assert draws.mean() == pytest.approx(0.3, abs=0.005)
    edge = noise.truncated_normal(np.random.default_rng(0), mean=0.0, std=0.1, size=20000)
    assert edge.min() >= 0.0
    assert edge.mean() == pytest.approx(0.1 * math.sqrt(2 / math.pi), abs=0.005)  # half-normal mean


def _slow_idn_row(x: np.ndarray, y: int, q: float, weights: np.ndarray) -> np.ndarray:
    """One sample's IDN distribution, written per the paper with plain loops."""
    num_classes = weights.shape[0]
    flat = x.reshape(-1).astype(np.float64)
    scores = [float(flat @ weights[y][:, j]) for j in range(num_classes)]
    top = max(s for j, s in enumerate(scores) if j != y)
    exps = [0.0 if j == y else math.exp(s - top) for j, s in enumerate(scores)]
    row = np.array([q * e / sum(exps) for e in exps])
    row[y] = 1.0 - q
    return row


def test_idn_probabilities_match_slow_reference() -> None:
    # Scale the pixels down so the softmax is not one-hot and every entry of the row is exercised.
    rng = np.random.default_rng(5)
    images = rng.integers(0, 3, size=(12, 2, 2, 2), dtype=np.uint8)
    labels = rng.integers(0, 4, size=12)
    weights = rng.standard_normal((4, 8, 4)) * 0.3
    flip_rates = rng.uniform(0, 1, size=12)
    rows = noise.idn_probabilities(images, labels, flip_rates=flip_rates, weights=weights)
    assert rows.shape == (12, 4)
    for i in range(12):
        np.testing.assert_allclose(
            rows[i], _slow_idn_row(images[i], int(labels[i]), flip_rates[i], weights), rtol=1e-10, atol=1e-15
        )
    np.testing.assert_allclose(rows[np.arange(12), labels], 1.0 - flip_rates)
    np.testing.assert_allclose(rows.sum(axis=1), 1.0)


def test_idn_labels_match_slow_reference_with_the_same_draws(monkeypatch: pytest.MonkeyPatch) -> None:
    images, labels = _random_data(60, 5, shape=(1, 3, 3), seed=7)
    labels[:3] = 4  # make sure several classes are present
    monkeypatch.setattr(generators, "_IDN_CHUNK_BYTES", 8 * 9 * 4)  # chunks of 4 rows: exercises chunking
    got = noise.idn_labels(images, labels, num_classes=5, rate=0.4, seed=11)

    # The documented order of draws: q, one uniform per sample, then W as a single [C, D, C] block.
    rng = np.random.default_rng(11)
    q = noise.truncated_normal(rng, mean=0.4, std=0.1, size=60)
    u = rng.random(60)
    weights = rng.standard_normal((5, 9, 5))
    want = []
    for i in range(60):
        row = _slow_idn_row(images[i], int(labels[i]), q[i], weights)
        cdf = np.cumsum(row) / row.sum()
        want.append(int(np.searchsorted(cdf, u[i], side="right")))
    assert got.tolist() == want
    assert 0 < np.mean(got != labels) < 1


def test_idn_handles_large_images_in_bounded_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    images, labels = _random_data(8, 3, shape=(3, 24, 24))
    monkeypatch.setattr(generators, "_IDN_CHUNK_BYTES", 3 * 24 * 24 * 8 * 2)
    chunked = noise.idn_labels(images, labels, num_classes=3, rate=0.5, seed=0)
    monkeypatch.setattr(generators, "_IDN_CHUNK_BYTES", 2**30)
    assert np.array_equal(chunked, noise.idn_labels(images, labels, num_classes=3, rate=0.5, seed=0))


def test_symmetric_never_maps_to_itself_and_is_uniform_off_diagonal() -> None:
    labels = np.random.default_rng(0).integers(0, 5, size=30000)
    noisy = noise.symmetric_labels(labels, num_classes=5, rate=0.4, seed=3)
    t = noise.transition_matrix(labels, noisy, 5)
    np.testing.assert_allclose(np.diag(t), 0.6, atol=0.02)
    off = t[~np.eye(5, dtype=bool)]
    np.testing.assert_allclose(off, 0.1, atol=0.015)  # 0.4 spread over the 4 other classes
    assert np.mean(noisy != labels) == pytest.approx(0.4, abs=0.01)
    # with rate near 1, almost every label flips and none flips onto itself
    nearly_all = noise.symmetric_labels(labels, num_classes=5, rate=0.999, seed=3)
    assert np.mean(nearly_all != labels) > 0.99


def test_pair_maps_to_the_next_class_only() -> None:
    labels = np.random.default_rng(0).integers(0, 4, size=20000)
    noisy = noise.pair_labels(labels, num_classes=4, rate=0.35, seed=1)
    flipped = noisy != labels
    assert np.array_equal(noisy[flipped], (labels[flipped] + 1) % 4)
    assert flipped.mean() == pytest.approx(0.35, abs=0.015)
    t = noise.transition_matrix(labels, noisy, 4)
    assert t[3, 0] == pytest.approx(0.35, abs=0.03)  # the last class wraps round to 0
    assert np.count_nonzero(t) == 8


def test_transition_matrix_by_hand() -> None:
    clean = np.array([0, 0, 0, 0, 2, 2])
    noisy = np.array([0, 1, 1, 2, 2, 0])
    t = noise.transition_matrix(clean, noisy, 3)
    np.testing.assert_allclose(t, np.array([[0.25, 0.5, 0.25], [0.0, 0.0, 0.0], [0.5, 0.0, 0.5]]))


@pytest.mark.parametrize("text", ["idn:0.3", "sym:0.5", "pair:0.2", "none"])
def test_transition_rows_sum_to_one(text: str) -> None:
    images, labels = _random_data(800, 6)
    labels[labels == 5] = 4  # class 5 absent: its row stays 0
    spec = NoiseSpec.parse(text)
    result = noise.make_noisy_labels(spec, images=images, labels=labels, num_classes=6, seed=0)
    assert result.transition.dtype == np.float64 and result.transition.shape == (6, 6)
    np.testing.assert_allclose(result.transition[:5].sum(axis=1), 1.0)
    assert not result.transition[5].any()
    realised = 1.0 - np.sum(np.diag(result.transition) * np.bincount(labels, minlength=6)) / len(labels)
    assert result.realised_rate == pytest.approx(realised)


@pytest.mark.parametrize("text", ["idn:0.3", "sym:0.5", "none"])
def test_a_kept_subset_is_drawn_with_the_whole_set_and_described_alone(text: str) -> None:
    images, labels = _random_data(600, 5)
    spec = NoiseSpec.parse(text)
    whole = noise.make_noisy_labels(spec, images=images, labels=labels, num_classes=5, seed=3)
    keep = np.sort(np.random.default_rng(0).choice(600, size=150, replace=False))
    kept = noise.make_noisy_labels(spec, images=images, labels=labels, num_classes=5, seed=3, keep=keep)
    assert kept.labels.dtype == np.int64 and np.array_equal(kept.labels, whole.labels[keep])
    assert kept.realised_rate == float(np.mean(whole.labels[keep] != labels[keep]))
    assert np.array_equal(kept.transition, noise.transition_matrix(labels[keep], whole.labels[keep], 5))


def test_none_keeps_labels() -> None:
    images, labels = _random_data(50, 3)
    result = noise.make_noisy_labels(NoiseSpec("none"), images=images, labels=labels, num_classes=3, seed=0)
    assert np.array_equal(result.labels, labels) and result.realised_rate == 0.0
    np.testing.assert_allclose(result.transition, np.eye(3))


def test_bad_inputs_raise_user_errors() -> None:
    images, labels = _random_data(10, 3)
    with pytest.raises(UserError) as excinfo:
        noise.make_noisy_labels(
            NoiseSpec("idn", rate=0.2), images=images, labels=labels, num_classes=2, seed=0
        )
    assert "outside [0, 2)" in _one_line_user_error(excinfo)
    with pytest.raises(UserError):
        noise.idn_labels(images[:5], labels, num_classes=3, rate=0.2, seed=0)
    with pytest.raises(UserError):
        noise.symmetric_labels(labels, num_classes=3, rate=1.5, seed=0)
    with pytest.raises(UserError):
        noise.pair_labels(labels, num_classes=1, rate=0.1, seed=0)


# ------------------------------------------------------------------------------------------ files


def test_pt_file_loads_by_key(tmp_path: Path) -> None:
    path = tmp_path / "CIFAR-10_human.pt"
    worse = np.array([3, 1, 0, 2, 2])
    torch.save(
        {
            "worse_label": worse,
            "clean_label": np.arange(5, dtype=np.int32) % 4,
            "tensor_label": torch.tensor([1, 1, 1, 1, 1]),
        },
        path,
    )
    loaded = noise.load_label_file(path, key="worse_label", num_samples=5, num_classes=4)
    assert loaded.dtype == np.int64 and loaded.tolist() == worse.tolist()
    clean = noise.load_label_file(path, key="clean_label", num_samples=5, num_classes=4)
    assert clean.tolist() == [0, 1, 2, 3, 0]
    tensor = noise.load_label_file(path, key="tensor_label", num_samples=5, num_classes=4)
    assert tensor.tolist() == [1] * 5

    spec = NoiseSpec.parse(f"file:{path}#worse_label")
    images, clean = np.zeros((5, 1, 2, 2), np.uint8), np.array([3, 1, 0, 2, 0])
    result = noise.make_noisy_labels(spec, images=images, labels=clean, num_classes=4, seed=0)
    assert result.labels.tolist() == worse.tolist() and result.realised_rate == pytest.approx(0.2)


def test_pt_file_from_numpy_1_loads(tmp_path: Path) -> None:
    # The CIFAR-N files were pickled under numpy 1.x, which names `numpy.core.multiarray._reconstruct`;
    # rewrite a fresh file's pickle to that spelling.
    fresh, old = tmp_path / "fresh.pt", tmp_path / "old.pt"
    torch.save({"worse_label": np.array([1, 0, 1])}, fresh)
    buffer = io.BytesIO()
    with zipfile.ZipFile(fresh) as src, zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as dst:
        for name in src.namelist():
            data = src.read(name)
            if name.endswith("data.pkl"):
                data = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
            dst.writestr(name, data)
    old.write_bytes(buffer.getvalue())
    assert noise.load_label_file(old, key="worse_label", num_samples=3, num_classes=2).tolist() == [1, 0, 1]


class _Payload:
    """Unpickling this would create a marker file: proof that the loader ran code from the file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[Path]]:
        return (Path.touch, (self.marker,))


def test_pt_file_with_arbitrary_objects_is_refused_without_running_code(tmp_path: Path) -> None:
    path, marker = tmp_path / "evil.pt", tmp_path / "ran"
    torch.save({"worse_label": _Payload(marker)}, path)
    with pytest.raises(UserError) as excinfo:
        noise.load_label_file(path, key="worse_label", num_samples=3, num_classes=10)
    assert "objects other than" in _one_line_user_error(excinfo)
    assert not marker.exists()


def test_pt_file_errors(tmp_path: Path) -> None:
    path = tmp_path / "labels.pt"
    torch.save({"worse_label": np.array([0, 1, 2]), "aggre_label": np.array([0, 1, 1])}, path)

    def error(
        file: Path = path, *, key: str | None = "worse_label", num_samples: int = 3, num_classes: int = 3
    ) -> str:
        with pytest.raises(UserError) as excinfo:
            noise.load_label_file(file, key=key, num_samples=num_samples, num_classes=num_classes)
        return _one_line_user_error(excinfo)

    assert "keys present: aggre_label, worse_label" in error(key="random_label1")
    assert "aggre_label, worse_label" in error(key=None)
    assert "has 3 labels but the data set has 4" in error(num_samples=4)
    assert "outside [0, 2)" in error(num_classes=2)
    assert "does not exist" in error(tmp_path / "missing.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a torch file")
    assert "cannot read" in error(garbage, key=None)
    floats = tmp_path / "floats.pt"
    torch.save({"worse_label": np.array([0.0, 1.0, 2.0])}, floats)
    assert "objects other than" in error(floats)


def test_npy_and_text_files(tmp_path: Path) -> None:
    npy, csv, txt = tmp_path / "l.npy", tmp_path / "l.csv", tmp_path / "l.txt"
    np.save(npy, np.array([2, 0, 1], dtype=np.int32))
    csv.write_text("2\n0\n1\n")
    txt.write_text("2\n0\n\n1")
    for path in (npy, csv, txt):
        assert noise.load_label_file(path, key=None, num_samples=3, num_classes=3).tolist() == [2, 0, 1]
        assert NoiseSpec.parse(f"file:{path}").path == path

    bad_text = tmp_path / "bad.txt"
    bad_text.write_text("1\ncat\n")
    with pytest.raises(UserError, match="line 2"):
        noise.load_label_file(bad_text, key=None, num_samples=2, num_classes=3)
    objects = tmp_path / "objects.npy"
    np.save(objects, np.array([1, "a"], dtype=object), allow_pickle=True)
    with pytest.raises(UserError):
        noise.load_label_file(objects, key=None, num_samples=2, num_classes=3)
    with pytest.raises(UserError, match=r"only applies to \.pt"):
        noise.load_label_file(npy, key="worse_label", num_samples=3, num_classes=3)
    unknown = tmp_path / "labels.json"
    unknown.write_text("[2, 0, 1]")
    with pytest.raises(UserError, match="unknown type"):
        noise.load_label_file(unknown, key=None, num_samples=3, num_classes=3)


# ---------------------------------------------------------------------------------------- caching


def _cached(
    spec: NoiseSpec, images: np.ndarray, labels: np.ndarray, *, num_classes: int, seed: int, cache_dir: Path
) -> noise.NoisyLabels:
    return noise.make_noisy_labels(
        spec, images=images, labels=labels, num_classes=num_classes, seed=seed, cache_dir=cache_dir
    )


def test_cache_hit_reuses_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    images, labels = _random_data(300, 10)
    spec = NoiseSpec("idn", rate=0.3)
    first = _cached(spec, images, labels, num_classes=10, seed=4, cache_dir=tmp_path)
    files = list(tmp_path.iterdir())
    assert len(files) == 1 and files[0].suffix == ".npy"  # no temp file left behind
    mtime = files[0].stat().st_mtime_ns

    def must_not_run(*args: object, **kwargs: object) -> np.ndarray:
        raise AssertionError("recomputed despite a cached copy")

    monkeypatch.setattr(make, "idn_labels", must_not_run)
    again = _cached(spec, images, labels, num_classes=10, seed=4, cache_dir=tmp_path)
    assert np.array_equal(again.labels, first.labels) and again.realised_rate == first.realised_rate
    assert files[0].stat().st_mtime_ns == mtime

    # Anything the labels depend on (seed, pixels) gives a different cache entry.
    with pytest.raises(AssertionError, match="recomputed"):
        _cached(spec, images, labels, num_classes=10, seed=5, cache_dir=tmp_path)
    with pytest.raises(AssertionError, match="recomputed"):
        _cached(spec, images[::-1].copy(), labels, num_classes=10, seed=4, cache_dir=tmp_path)


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (b"truncated", "it is not a readable .npy array"),
        (np.arange(99), "it holds labels of shape (99,) for 100 samples"),
        (np.zeros(100, np.float32), "its labels are float32, not integers"),
        (np.full(100, 7), "its labels range over [7, 7], outside [0, 4)"),
    ],
    ids=["bytes", "length", "floats", "range"],
)
def test_damaged_cache_file_is_set_aside_and_regenerated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: bytes | np.ndarray, problem: str
) -> None:
    labels = np.random.default_rng(0).integers(0, 4, size=100)
    images = np.zeros((100, 1, 1, 1), np.uint8)
    spec = NoiseSpec("symmetric", rate=0.3)
    first = _cached(spec, images, labels, num_classes=4, seed=0, cache_dir=tmp_path)
    (cached,) = tmp_path.iterdir()
    if isinstance(damage, bytes):
        cached.write_bytes(damage)
    else:
        np.save(cached, damage)
    bad_bytes = cached.read_bytes()
    capsys.readouterr()
    again = _cached(spec, images, labels, num_classes=4, seed=0, cache_dir=tmp_path)
    assert np.array_equal(again.labels, first.labels)
    assert np.array_equal(np.load(cached), first.labels)  # the entry is drawn again and stored
    assert cached.with_name(cached.name + ".bad").read_bytes() == bad_bytes  # the bad one kept aside
    (line,) = capsys.readouterr().err.splitlines()
    assert line == (
        f"warning: noise cache entry {cached} cannot be used ({problem}): set aside as "
        f"{cached.name}.bad; drawing the labels again"
    )


# ------------------------------------------------------------------------- sizes that grow with classes


def test_the_transition_matrix_bounds_the_class_count() -> None:
    side = math.isqrt(noise.MAX_TRANSITION_ENTRIES)
    noise.check_noise_size(NoiseSpec("symmetric", rate=0.2), num_classes=side, image_shape=(1, 4, 4))
    with pytest.raises(
        UserError, match=rf"{side + 1:,} classes are too many for this run: the noise transition"
    ):
        noise.check_noise_size(NoiseSpec("symmetric", rate=0.2), num_classes=side + 1, image_shape=(1, 4, 4))


def test_the_idn_projection_is_bounded_and_reports_its_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    images, labels = _random_data(200, 8)  # 8 classes of 1×8×8 images: W has 8 × 64 × 8 numbers
    spec = NoiseSpec("idn", rate=0.3)
    monkeypatch.setattr(make, "MAX_IDN_DRAWS", 8 * 64 * 8 - 1)
    with pytest.raises(
        UserError, match=r"idn noise would draw a 8 × 64 × 8 projection for 1×8×8 images \(4,096"
    ):
        noise.make_noisy_labels(spec, images=images, labels=labels, num_classes=8, seed=0)
    noise.check_noise_size(NoiseSpec("pair", rate=0.3), num_classes=8, image_shape=(1, 8, 8))  # IDN's only

    monkeypatch.setattr(make, "MAX_IDN_DRAWS", 8 * 64 * 8)
    monkeypatch.setattr(make, "ANNOUNCE_IDN_DRAWS", 0)  # as if this draw took minutes
    lines: list[str] = []
    said = noise.make_noisy_labels(
        spec, images=images, labels=labels, num_classes=8, seed=0, say=lines.append
    )
    silent = noise.make_noisy_labels(spec, images=images, labels=labels, num_classes=8, seed=0)
    assert np.array_equal(said.labels, silent.labels)  # reporting draws nothing
    assert lines[0].startswith("noise idn:0.3: drawing the IDN projection (4,096 random numbers")
    assert [line.split(": ")[1].split(" %")[0] for line in lines[1:]] == ["25", "50", "75", "100"]
