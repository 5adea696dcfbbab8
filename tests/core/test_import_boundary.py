"""The core is the pure algorithm: no frameworks, no files (DESIGN §2)."""

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "trajfusion" / "core"
FORBIDDEN = {"torch", "vllm", "transformers", "wandb", "hydra", "omegaconf", "datasets", "deepspeed", "lm_eval",
             "os", "io", "pathlib", "shutil", "subprocess", "sqlite3", "gzip", "json", "tempfile", "multiprocessing"}


@pytest.mark.parametrize("path", sorted(CORE.glob("*.py")), ids=lambda p: p.name)
def test_core_module_imports_nothing_forbidden(path):
    tree = ast.parse(path.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "open":
            pytest.fail(f"{path.name}:{node.lineno} calls open()")
    assert not imported & FORBIDDEN, f"{path.name} imports {sorted(imported & FORBIDDEN)}"
