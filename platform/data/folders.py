"""Class-per-folder image datasets: Kermany's chest X-rays and any torchvision-style ImageFolder.

Layout: root/train/<class>/<image>, root/test/<class>/<image>.  Class names are the sorted folder
names, so label k always means the same folder on every machine.  Hidden files and folders (macOS
`.DS_Store`, `._*` resource forks) and files without an image extension are skipped.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, UnidentifiedImageError

from noisylab.data.images import (
    IMAGE_EXTENSIONS,
    Dataset,
    ImageSet,
    labels_tensor,
    read_images,
    relative_files,
)
from noisylab.errors import UserError

DEFAULT_IMAGE_SIZE = 224  # for folders of mixed sizes: ImageNet's, what timm's models expect


def native_size(paths: list[Path]) -> int | None:
    """The side of the images when every one is square and of one size, else None. Reads only the
    headers (PIL opens lazily), so a 32-px set is trained at 32 px, not blown up to 224."""
    sizes = set()
    for path in paths:
        try:
            with Image.open(path) as image:
                sizes.add(image.size)
        except (OSError, UnidentifiedImageError):
            return None  # read_images names the broken file
        if len(sizes) > 1:
            return None
    (w, h), *_ = sizes
    return w if w == h else None


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def class_folders(split_dir: Path) -> dict[str, list[Path]]:
    """{class name: sorted image paths} for one split folder; UserError when it is missing or empty."""
    if not split_dir.is_dir():
        raise UserError(
            f"{split_dir} is not a folder: expected one sub-folder of images per class there "
            f"(e.g. {split_dir}/<class>/image.jpg); check --data-root"
        )
    classes: dict[str, list[Path]] = {}
    for folder in sorted(p for p in split_dir.iterdir() if p.is_dir() and _visible(p)):
        images = sorted(
            p
            for p in folder.iterdir()
            if p.is_file() and _visible(p) and p.suffix.lower() in IMAGE_EXTENSIONS
        )
        if not images:
            raise UserError(
                f"class folder {folder} holds no images (extensions {', '.join(sorted(IMAGE_EXTENSIONS))}); "
                "add images or remove the folder"
            )
        classes[folder.name] = images
    if not classes:
        raise UserError(
            f"{split_dir} has no class sub-folders: put the images in {split_dir}/<class>/ "
            "(one folder per class)"
        )
    return classes


def _load_split(
    folders: dict[str, list[Path]],
    class_names: tuple[str, ...],
    *,
    mode: str,
    image_size: int,
    data_root: Path,
) -> ImageSet:
    paths: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(class_names):
        paths.extend(folders[name])
        labels.extend([label] * len(folders[name]))
    images = read_images(paths, mode=mode, image_size=image_size)
    return ImageSet(images, labels_tensor(labels), class_names, relative_files(paths, data_root))


def load_class_folders(
    name: str,
    root: Path,
    *,
    mode: str,
    image_size: int | None,
    hint: str,
    data_root: Path | None = None,
) -> Dataset:
    """root/{train,test}/<class>/* decoded to `mode` ("L" or "RGB") at image_size x image_size; when
    image_size is None, at the images' own size if they all share one square size, else 224.

    `hint` is the dataset-specific advice appended to a missing-root error. Each image's file is kept
    relative to `data_root` (the folder the user named; default `root`).
    """
    if not root.is_dir():
        raise UserError(f"{name} not found: {root} is not a folder; {hint}")
    train, test = class_folders(root / "train"), class_folders(root / "test")
    if image_size is None:
        every = [p for split in (train, test) for paths in split.values() for p in paths]
        size = native_size(every) or DEFAULT_IMAGE_SIZE
    else:
        size = image_size
    if set(train) != set(test):
        only_train, only_test = sorted(set(train) - set(test)), sorted(set(test) - set(train))
        raise UserError(
            f"{name}: train and test under {root} have different class folders "
            f"(only in train: {only_train}, only in test: {only_test}); give both splits the same classes"
        )
    class_names = tuple(sorted(train))
    base = root if data_root is None else data_root
    return Dataset(
        name=name,
        train=_load_split(train, class_names, mode=mode, image_size=size, data_root=base),
        test=_load_split(test, class_names, mode=mode, image_size=size, data_root=base),
    )


def load_chest_xray(root: Path, *, image_size: int | None = None) -> Dataset:
    """Kermany pediatric chest X-rays (NORMAL / PNEUMONIA), grayscale, one channel.

    The Kaggle archive unpacks into an extra `chest_xray/` folder; that level is accepted too.
    Its tiny `val/` split is ignored.
    """
    given = root
    if not (root / "train").is_dir() and (root / "chest_xray" / "train").is_dir():
        root = root / "chest_xray"
    return load_class_folders(
        "chest-xray",
        root,
        data_root=given,  # files as `chest_xray/train/...` then: found again from the folder given
        mode="L",
        image_size=image_size,
        hint="unpack Kermany's ChestXRay2017 archive there (train/NORMAL, train/PNEUMONIA, test/...) "
        "or pass --data-root",
    )


def load_image_folder(root: Path, *, image_size: int | None = None) -> Dataset:
    """Any root/{train,test}/<class>/* tree, decoded as RGB (three channels)."""
    return load_class_folders(
        "imagefolder",
        root,
        mode="RGB",
        image_size=image_size,
        hint="create root/train/<class>/ and root/test/<class>/ with your images or pass --data-root",
    )
