"""deploy/modbot.service: the unit starts what the checkout provides, keeps message text private, restarts on
failure, and agrees with docs/operations.md about where the bot's data lives."""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path, PurePosixPath

import pytest

from bot.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "modbot.service"


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # systemd's keys are case-sensitive
    parser.read_string(UNIT.read_text(encoding="utf-8"))
    return parser


def test_the_unit_runs_the_checkouts_modbot_run():
    service = _unit()["Service"]
    checkout = PurePosixPath(service["WorkingDirectory"])
    executable, *arguments = shlex.split(service["ExecStart"])
    # ExecStart is the console script `make setup` installs into the checkout's virtual environment.
    relative = PurePosixPath(executable).relative_to(checkout)
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert f"VENV := {relative.parts[0]}\n" in makefile and relative.parts[1:] == ("bin", "modbot")
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert scripts["modbot"] == "bot.cli:main"
    assert arguments == ["run"]
    assert build_parser().parse_args(arguments).command == "run"
    # .env of the checkout, the file .env.example describes.
    assert PurePosixPath(service["EnvironmentFile"]) == checkout / ".env" and (ROOT / ".env.example").is_file()


def test_the_unit_restarts_on_failure_and_keeps_message_text_private():
    service = _unit()["Service"]
    assert service["Restart"] == "on-failure"
    assert service["UMask"] == "0077"  # the database, its WAL, train.jsonl, job files: 0600
    assert service["User"] not in ("", "root")
    assert service["NoNewPrivileges"] == "yes" and service["PrivateTmp"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert _unit()["Install"]["WantedBy"] == "multi-user.target"


def test_the_database_and_the_adapters_lie_in_the_only_writable_directory():
    """ProtectSystem=strict makes everything else read-only: the settings the unit's header and
    docs/operations.md tell the owner to put in .env must point inside ReadWritePaths."""
    service = _unit()["Service"]
    writable = [PurePosixPath(path) for path in service["ReadWritePaths"].split()]
    assert PurePosixPath("/var/lib", service["StateDirectory"]) in writable
    header = UNIT.read_text(encoding="utf-8")
    operations = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    for name in ("MODBOT_DB", "MODBOT_ADAPTER_DIR"):
        [line] = [line.split("#", 1)[1].strip() for line in header.splitlines() if f"{name}=" in line]
        value = PurePosixPath(line.split("=", 1)[1])
        assert any(value.is_relative_to(directory) for directory in writable), line
        assert line in operations, f"docs/operations.md does not tell the owner to set {line}"
    assert PurePosixPath(service["Environment"].split("=", 1)[1]) in writable  # HOME: the model cache


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify_accepts_the_unit(tmp_path):
    """The unit as systemd reads it, with the checkout's paths in place of /opt/modbot (which must exist)."""
    modbot = shutil.which("modbot", path=str(Path(sys.executable).parent))
    if modbot is None:
        pytest.skip("the modbot console script is not installed beside this Python")
    text = UNIT.read_text(encoding="utf-8").replace("/opt/modbot/.venv/bin/modbot", modbot)
    unit = tmp_path / "modbot.service"
    unit.write_text(text.replace("/opt/modbot", str(ROOT)), encoding="utf-8")
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stderr.strip() == "", done.stderr
