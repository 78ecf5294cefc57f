"""`platform/` is the noisylab package but must never shadow the standard library's `platform`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_platform_folder_has_no_init() -> None:
    assert (ROOT / "platform" / "config" / "run.py").exists()
    assert not (ROOT / "platform" / "__init__.py").exists()


def test_stdlib_platform_wins_from_the_repo_root() -> None:
    # The repo root on sys.path (python -m, pytest, Ray's working_dir) must still give the stdlib module.
    code = "import platform, noisylab.api as api; print(hasattr(platform, 'machine'), api.__file__)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    is_stdlib, config_file = out.stdout.split()
    assert is_stdlib == "True"
    assert Path(config_file).parent.name == "platform"


# ---- the layers point one way ---------------------------------------------------------------------

PLATFORM = ROOT / "platform"
LAYERS = ("config", "data", "noise", "train", "results", "studies")
# For each layer, what none of its modules may import at run time (imports under `if TYPE_CHECKING:`
# are types only and allowed). "torch" covers every torch-based package; a noisylab name is a layer or
# a top-level module (cli, runner, api).
FORBIDDEN: dict[str, set[str]] = {
    "noise": {"config", "data", "train", "results", "studies", "cli", "runner", "api", "trainables"},
    "config": {"data", "train", "results", "studies", "cli", "runner", "api"},
    "data": {"train", "results", "studies", "cli", "runner", "api", "trainables"},
    "train": {"studies", "cli", "runner", "api", "sweeps"},
    "results": {"torch", "timm", "torchvision", "train", "data", "studies", "cli", "runner", "trainables"},
    "studies": {"cli", "api"},
}
TORCH = {"torch", "timm", "torchvision"}


def _runtime_imports(path: Path) -> set[str]:
    """Every name a module imports when it runs, as 'torch' or a noisylab layer / top-level module."""
    import ast

    tree = ast.parse(path.read_text(encoding="utf-8"))
    type_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            type_only |= {id(n) for child in node.body for n in ast.walk(child)}
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules = [node.module]
            if node.module == "noisylab":
                modules = [f"noisylab.{a.name}" for a in node.names]
        for module in modules:
            top, _, rest = module.partition(".")
            if top == "noisylab" and rest:
                names.add(rest.split(".")[0])
            elif top in TORCH | {"ray"}:
                names.add(top)
    return names


def test_each_layer_imports_only_the_layers_below_it() -> None:
    broken = []
    for layer in LAYERS:
        modules = sorted((PLATFORM / layer).rglob("*.py"))
        assert modules, f"no modules under platform/{layer}"
        for module in modules:
            for name in sorted(_runtime_imports(module) & FORBIDDEN[layer]):
                broken.append(f"{module.relative_to(ROOT)} imports {name}")
    assert not broken, "\n".join(broken)


def test_the_layer_check_sees_a_forbidden_import(tmp_path: Path) -> None:
    module = tmp_path / "bad.py"
    module.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from noisylab.train.models import Network\n"
        "def f():\n    import torch\n    from noisylab import cli\n"
    )
    assert _runtime_imports(module) == {"torch", "cli"}  # the TYPE_CHECKING import is types only


def test_platform_top_level_is_the_layers_and_the_entry_points() -> None:
    folders = {p.name for p in PLATFORM.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders == set(LAYERS)
    assert all((PLATFORM / layer / "__init__.py").exists() for layer in LAYERS)
    modules = {p.stem for p in PLATFORM.glob("*.py")}
    assert modules <= {"api", "cli", "runner", "errors", "atomic", "names", "quiet", "consoles", "retries"}, (
        modules
    )
