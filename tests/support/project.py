"""Where the project's files are, for tests at any depth of the tree."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
