"""The bot's storage, its command line and the model API import no torch: a thin client of a remote backend
(MODBOT_BACKEND=ray) never loads it, and `modbot --help` answers at once."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("torch", "transformers", "peft", "bitsandbytes")


def modules_loaded_by(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(sorted(m for m in sys.modules if '.' not in m)))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    return set(result.stdout.split())


@pytest.mark.parametrize("code", [
    "import bot.storage",
    "import model",
    "from model import Prediction, ModelSettings, InferenceBackend, Served, LABELS",
    "import bot.bot",
    "from bot.cli import build_parser; build_parser()",
])
def test_importing_loads_no_torch(code):
    assert not set(HEAVY) & modules_loaded_by(code)


def test_modbot_help_loads_no_torch():
    code = ("import sys\nfrom bot.cli import main\nsys.argv = ['modbot', '--help']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass")
    assert not set(HEAVY) & modules_loaded_by(code)


def test_the_lazy_names_still_resolve():
    assert "torch" in modules_loaded_by("from model import Classifier")
