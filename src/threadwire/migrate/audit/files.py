"""Which files an audit reads: Python files under the root that git would not ignore,
minus configured excludes; and the dotted module name of each, for import resolution."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pathspec

# Directories no team means to audit even without a .gitignore saying so.
_ALWAYS_SKIPPED = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        "__pycache__",
        ".venv",
        "venv",
        ".tox",
        ".nox",
        "node_modules",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
        "site-packages",
    }
)


@dataclass(frozen=True)
class SourceFile:
    """A Python file found under the audited root."""

    path: Path
    relpath: str  # relative to the audited root, POSIX separators
    module: str  # dotted module name, from the chain of packages above it

    @property
    def is_test(self) -> bool:
        """Whether the file is test code (by the names pytest and unittest look for)."""
        parts = PurePosixPath(self.relpath).parts
        name = parts[-1]
        return (
            name.startswith("test_")
            or name.endswith("_test.py")
            or name == "conftest.py"
            or any(part in {"tests", "test"} for part in parts[:-1])
        )


class _Ignore:
    """The .gitignore files that apply to a directory, each anchored where it lives."""

    def __init__(self, specs: tuple[tuple[Path, pathspec.PathSpec], ...] = ()) -> None:
        self._specs = specs

    def child(self, directory: Path) -> _Ignore:
        gitignore = directory / ".gitignore"
        if not gitignore.is_file():
            return self
        try:
            lines = gitignore.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return self
        spec = pathspec.GitIgnoreSpec.from_lines(lines)
        return _Ignore((*self._specs, (directory, spec)))

    def ignored(self, path: Path, *, is_dir: bool) -> bool:
        for base, spec in self._specs:
            try:
                rel = path.relative_to(base).as_posix()
            except ValueError:
                continue
            if spec.match_file(rel + "/" if is_dir else rel):
                return True
        return False


def _git_top(root: Path) -> Path | None:
    for directory in (root, *root.parents):
        if (directory / ".git").exists():
            return directory
    return None


def _ignore_for(root: Path) -> _Ignore:
    """The .gitignore files from the repository top down to `root` itself."""
    ignore = _Ignore()
    top = _git_top(root)
    if top is None or top == root:
        return ignore.child(root)
    chain = [root, *root.relative_to(top).parents]
    for rel in reversed(chain[1:]):
        ignore = ignore.child(top / rel)
    return ignore.child(root)


def iter_python_files(root: Path, exclude: tuple[str, ...] = ()) -> Iterator[SourceFile]:
    """Yield every .py file under `root` (or `root` itself), sorted by relative path."""
    root = root.resolve()
    if root.is_file():
        yield SourceFile(root, root.name, module_name(root))
        return
    excluded = pathspec.GitIgnoreSpec.from_lines(exclude) if exclude else None
    found: list[SourceFile] = []
    stack: list[tuple[Path, _Ignore]] = [(root, _ignore_for(root))]
    while stack:
        directory, ignore = stack.pop()
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            path = Path(entry.path)
            rel = path.relative_to(root).as_posix()
            if entry.is_dir(follow_symlinks=False):
                if entry.name in _ALWAYS_SKIPPED or (path / "pyvenv.cfg").exists():
                    continue
                if ignore.ignored(path, is_dir=True):
                    continue
                if excluded is not None and excluded.match_file(rel + "/"):
                    continue
                stack.append((path, ignore.child(path)))
            elif entry.name.endswith(".py") and entry.is_file():
                if ignore.ignored(path, is_dir=False):
                    continue
                if excluded is not None and excluded.match_file(rel):
                    continue
                found.append(SourceFile(path, rel, module_name(path)))
    yield from sorted(found, key=lambda f: f.relpath)


def module_name(path: Path) -> str:
    """The dotted name `path` imports as: its stem plus every package (a directory with
    an __init__.py) above it, even above the audited root when that is a package."""
    parts = [] if path.name == "__init__.py" else [path.stem]
    directory = path.parent
    while (directory / "__init__.py").exists() and directory.parent != directory:
        parts.insert(0, directory.name)
        directory = directory.parent
    return ".".join(parts)
