"""What a result depends on besides its config: the code of the modules its experiment imports and the libraries
that compute it. A cache key covers exactly this (docs/design.md, "The cache key").

Code is hashed as its syntax tree without docstrings, so comments, docstrings and formatting change no key; an
experiment's code is its family package (engine/diagonal, ...) and every engine module it imports, followed
transitively, so editing the diagonal code leaves ResNet keys alone. Libraries: numpy, and numba and torch where
the experiment's code imports them; for torch, the CUDA and cuDNN versions and the device kind the config runs on.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
import json
from pathlib import Path

ENGINE_ROOT = Path(__file__).resolve().parent.parent  # the engine package folder
LIBRARIES = ("numpy", "numba", "torch")  # the libraries whose version can change a number


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


def _tree_hash(tree: ast.AST) -> str:
    return hashlib.sha256(ast.dump(_strip_docstrings(tree), include_attributes=False).encode()).hexdigest()[:16]


def code_hash(source: str) -> str:
    """A hash of Python source that ignores comments, docstrings and formatting."""
    return _tree_hash(ast.parse(source))


def _module_file(name: str, root: Path) -> Path | None:
    """The file of module `name` ("engine.core.config") under `root` (the engine folder), if it exists; a module
    outside the engine (an experiment a test defines) is looked up where Python would import it from."""
    parts = name.split(".")
    if parts[0] != "engine":
        spec = importlib.util.find_spec(name)
        return Path(spec.origin) if spec is not None and spec.origin and spec.origin.endswith(".py") else None
    base = root.joinpath(*parts[1:])
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _imported(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        return [node.module] + [f"{node.module}.{a.name}" for a in node.names]
    return []


@functools.cache
def _summary(path: Path, stamp: tuple[int, int]) -> tuple[str, tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """(code hash; names imported anywhere; outside packages imported on load; imported only inside functions) of
    the file at `path` as it is at `stamp` (mtime, size): a file is parsed again only when it changes."""
    tree = ast.parse(path.read_text())
    names, eager, lazy = set(), set(), set()
    at_load = {id(n) for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))}
    for node in ast.walk(tree):
        for name in _imported(node):
            names.add(name)
            top = name.split(".")[0]
            if top != "engine":
                (eager if id(node) in at_load else lazy).add(top)
    return _tree_hash(tree), tuple(sorted(names)), tuple(sorted(eager)), tuple(sorted(lazy - eager))


def _read(path: Path) -> tuple[str, tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    info = path.stat()
    return _summary(path, (info.st_mtime_ns, info.st_size))


def _imports(path: Path, root: Path) -> tuple[set[str], set[str], set[str]]:
    """(engine modules imported anywhere in the file at `path`; outside packages imported when the module loads;
    outside packages imported only inside functions, on some paths)."""
    _, names, eager, lazy = _read(path)
    inner = {n for n in names if n.split(".")[0] == "engine" and _module_file(n, root) is not None}
    return inner, set(eager), set(lazy)


def closure(package: str, root: Path = ENGINE_ROOT) -> tuple[tuple[str, ...], frozenset[str], frozenset[str]]:
    """(every engine module the package's modules import, transitively, themselves included; the outside packages
    they import when they load; those they import only on some paths, e.g. torch for a device option).
    `package` is a family package ("engine.diagonal") or a single module."""
    start = _module_file(package, root)
    if start is None:
        raise ValueError(f"no engine module {package!r}")
    folder = start.parent if start.name == "__init__.py" else None
    todo = [package] + ([f"{package}.{p.stem}" for p in sorted(folder.glob("*.py")) if p.stem != "__init__"]
                        if folder is not None else [])
    seen: set[str] = set()
    eager: set[str] = set()
    lazy: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        inner, at_load, on_some_paths = _imports(_module_file(name, root), root)
        if name != __name__:  # this module asks torch only about torch code
            eager |= at_load
            lazy |= on_some_paths
        todo.extend(inner - seen)
    return tuple(sorted(seen)), frozenset(eager), frozenset(lazy - eager)


def family(module: str) -> str:
    """The package whose code a config's results depend on: the family package of an experiment module
    ("engine.diagonal.config" -> "engine.diagonal"); an engine module outside a package stands for itself."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 else module


def code_version(package: str, root: Path = ENGINE_ROOT) -> str:
    """A hash of the code of `package` and every engine module it imports (comments and docstrings aside)."""
    modules, _, _ = closure(package, root)
    digest = hashlib.sha256()
    for name in modules:
        digest.update(f"{name}\0{_read(_module_file(name, root))[0]}\0".encode())
    return digest.hexdigest()[:16]


@functools.cache
def library_versions(names: tuple[str, ...]) -> dict[str, str]:
    """Installed versions of the given distributions ("absent" for one that is not installed)."""
    from importlib import metadata  # here, not at the top: the CLI's imports stay as fast as before

    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


@functools.cache
def _torch_build() -> dict[str, str]:
    import torch

    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return dict(cuda=str(torch.version.cuda), cudnn=str(cudnn))


@functools.cache
def _cuda_device() -> str | None:
    import torch

    return f"cuda:{torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else None


def device_kind(requested: str) -> str:
    """The kind of device a torch run asked to run on `requested` ("auto" | "cpu" | "cuda") lands on."""
    if requested == "cpu":
        return "cpu"
    return _cuda_device() or ("cuda:absent" if requested == "cuda" else "cpu")


def state(module: str, device: str | None = None) -> dict:
    """What results computed by the code of `module`'s family depend on besides the config: its code version, the
    versions of the libraries it computes with, and for torch code CUDA/cuDNN and the device kind of `device`.
    torch counts when the family imports it on load, or imports it on some paths and `device` asks for a GPU
    (the small ReLU nets train with numba on the CPU, and with torch only on device="cuda")."""
    package = family(module)
    _, eager, lazy = closure(package, ENGINE_ROOT)
    torch = "torch" in eager or ("torch" in lazy and device not in (None, "auto", "cpu"))
    used = {n for n in LIBRARIES if n in eager} | {"numpy"} | ({"torch"} if torch else set())
    out = dict(code=code_version(package, ENGINE_ROOT), libraries=dict(library_versions(tuple(sorted(used)))))
    if torch:
        out["libraries"].update(_torch_build())
        out["device"] = device_kind(device or "auto")
    return out


def fingerprint(value: object) -> str:
    """A short hash of a JSON-ready value (a state, or a key's whole input)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:24]


def engine_version(root: Path = ENGINE_ROOT) -> str:
    """A hash of every engine module's code (comments and docstrings aside): sweep workers must run the same code as
    the process that starts the sweep."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(f"{path.relative_to(root).as_posix()}\0{_read(path)[0]}\0".encode())
    return digest.hexdigest()[:16]

