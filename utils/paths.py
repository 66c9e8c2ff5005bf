"""Where the project's own files are, whatever the working directory (Serve replicas differ)."""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PROMPTS_DIR = PROJECT_ROOT / "prompts"


def project_path(value: Path) -> Path:
    """A configured path: absolute as given, else under the repository root (replicas and
    jobs run with other working directories)."""
    return value if value.is_absolute() else PROJECT_ROOT / value
