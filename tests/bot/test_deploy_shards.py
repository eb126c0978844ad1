"""deploy/modbot@.service: one instance per bot process of a sharded application (modbot@0, modbot@1, ...),
each running `modbot run` with its instance name as MODBOT_SHARD_IDS, and otherwise deploy/modbot.service."""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bot import Settings

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "modbot.service"
TEMPLATE = ROOT / "deploy" / "modbot@.service"


def _read(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str
    parser.read_string(path.read_text(encoding="utf-8"))
    return parser


def test_each_instance_runs_modbot_run_with_its_shards_and_is_otherwise_the_single_unit():
    single, template = _read(UNIT), _read(TEMPLATE)
    assert single.sections() == template.sections()
    for section in single.sections():
        mine, theirs = dict(template[section]), dict(single[section])
        for key in ("Description", "ExecStart"):
            mine.pop(key, None), theirs.pop(key, None)
        assert mine == theirs, section  # same user, paths, restarts, hardening
    # The shards come on the command line, so that a MODBOT_SHARD_IDS line in .env (EnvironmentFile, which
    # systemd lets override Environment=) cannot give every instance the same shards.
    env, assignment, *command = shlex.split(template["Service"]["ExecStart"])
    assert (env, assignment) == ("/usr/bin/env", "MODBOT_SHARD_IDS=%i")
    assert command == shlex.split(single["Service"]["ExecStart"])
    # Instance names as the header shows them are valid shard ids for the bot.
    for instance, shards in (("0", (0,)), ("1", (1,)), ("4-7", (4, 5, 6, 7))):
        assert Settings.from_env({"MODBOT_SHARD_COUNT": "8", "MODBOT_SHARD_IDS": instance}).shard_ids == shards


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify_accepts_an_instance(tmp_path):
    modbot = shutil.which("modbot", path=str(Path(sys.executable).parent))
    if modbot is None:
        pytest.skip("the modbot console script is not installed beside this Python")
    text = TEMPLATE.read_text(encoding="utf-8").replace("/opt/modbot/.venv/bin/modbot", modbot)
    unit = tmp_path / "modbot@0-1.service"
    unit.write_text(text.replace("/opt/modbot", str(ROOT)), encoding="utf-8")
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stderr.strip() == "", done.stderr
