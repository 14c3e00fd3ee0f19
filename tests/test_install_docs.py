"""The README's install and test commands are what CI runs, and every skip says how to lift it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUIET = {"-q", "-qq", "--no-install-recommends"}


def _section_commands(title: str) -> list[str]:
    """The command lines of the first ```bash block under README's `## title`."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [_normal(line) for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _normal(text: str) -> str:
    """Continuation lines joined, quiet flags dropped, spaces collapsed."""
    words = text.replace("\\\n", " ").split()
    return " ".join(w for w in words if w not in QUIET)


def _ci_lines() -> list[str]:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").replace("\\\n", " ")
    return [_normal(line) for line in ci.splitlines() if not line.lstrip().startswith("#")]


def test_every_install_step_of_the_readme_is_in_ci():
    commands = _section_commands("Install")
    assert any("torch==" in c for c in commands) and any("apt-get install" in c for c in commands)
    ci = "\n".join(_ci_lines())
    missing = [c for c in commands if c not in ci]
    assert not missing, f"README install steps that .ci/run does not take: {missing}"


def test_ci_installs_nothing_the_readme_does_not_name():
    readme = "\n".join(_section_commands("Install"))
    installs = [line for line in _ci_lines() if re.search(r"\b(pip|apt-get) install\b", line)]
    # pip's own upgrade is CI plumbing, not a dependency of greval.
    installs = [line for line in installs if "--upgrade pip" not in line]
    for line in installs:
        step = re.search(r"\b(pip|apt-get) install\b.*?(?=\)|$| \|\|)", line).group(0).strip()
        assert step in readme, f".ci/run installs something the README does not: {step}"


def test_ci_runs_the_readme_test_command():
    (command,) = _section_commands("Tests")
    assert command in _ci_lines()


def _skip_calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = getattr(node.func, "attr", getattr(node.func, "id", ""))
            if name in {"skip", "skipif", "importorskip"}:
                yield name, node


def test_every_skip_reason_names_the_command_that_lifts_it():
    """Skips go through tests/_skips.py (install commands) or spell out a command themselves."""
    helpers = ("INSTALL", "APT", "no_program_reason", "require", "vllm_gpu_reason")
    bad = []
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        source = path.read_text(encoding="utf-8")
        for name, call in _skip_calls(ast.parse(source)):
            text = ast.get_source_segment(source, call) or ""
            if (
                name == "importorskip"
                or not any(h in text for h in helpers)
                and not re.search(r"pip |apt-get|pytest -m", text)
            ):
                bad.append(f"{path.name}:{call.lineno}: {text[:80]}")
    assert not bad, "skips whose reason does not name a command:\n" + "\n".join(bad)


def test_every_package_folder_is_installed():
    """pyproject lists greval's packages by name; a sub-package missing there works in an
    editable install (this checkout) and is absent from a wheel (a user's `pip install`)."""
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    listed = set(ast.literal_eval(re.search(r"^packages = (\[.*\])$", pyproject, re.M).group(1)))
    package_dir = re.search(r"^package-dir = \{(.*)\}$", pyproject, re.M).group(1)
    folders = {
        "greval": ROOT / "greval",
        **{k: ROOT / v for k, v in re.findall(r'"([\w.]+)" = "([\w/]+)"', package_dir)},
    }
    found = set()
    for name, folder in folders.items():
        for init in folder.rglob("__init__.py"):
            found.add(".".join((name, *init.parent.relative_to(folder).parts)))
    assert len(found) >= 6 and "greval.data" in found
    assert found <= listed, f"packages not in pyproject.toml's [tool.setuptools] packages: {sorted(found - listed)}"
