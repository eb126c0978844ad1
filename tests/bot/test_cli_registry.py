"""`modbot classify` and `modbot eval` use the adapter the bot serves: the registry's active version in
MODBOT_DB, unless --adapter or MODBOT_ADAPTER chooses one; and they say which. Each command runs in its own
process, as a user runs it."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot import storage

from . import test_retrain as shared

REPO = Path(__file__).resolve().parents[2]
first_adapter = shared.first_adapter  # a `1d` adapter of the tiny model, version "first"


def _modbot(args: list[str], cwd: Path, **extra_env) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODBOT_") and k != "DISCORD_TOKEN"}
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env={**env, "PYTHONPATH": str(REPO), **extra_env}, timeout=300)


@pytest.fixture
def registry(tmp_path, tiny_model_dir, first_adapter) -> dict[str, str]:
    """A bot's database whose registry has version 1 (the first adapter) and version 2 (named "v2") active,
    and the environment of a shell in the bot's directory."""
    adapters = tmp_path / "adapters"
    shutil.copytree(first_adapter, adapters / "v1")
    shutil.copytree(first_adapter, adapters / "v2")
    meta = adapters / "v2" / "modbot_adapter.json"
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "version": "v2"}))
    db_path = tmp_path / "bot.sqlite3"

    async def fill():
        conn = await storage.open_database(db_path)
        now = datetime.now(UTC)
        await storage.register_adapter(conn, number=1, name="first", model=str(tiny_model_dir), path=adapters / "v1",
                                       source=first_adapter, now=now)
        await storage.register_adapter(conn, number=2, name="v2", model=str(tiny_model_dir), path=adapters / "v2",
                                       source=None, now=now)
        await conn.close()

    asyncio.run(fill())
    (tmp_path / "data.csv").write_text("text,label\nhello friend,neutral\nyou idiot,offensive\nthose vermin,hate\n")
    return {"MODBOT_DB": str(db_path), "MODBOT_MODEL": str(tiny_model_dir), "MODBOT_DEVICE": "cpu",
            "MODBOT_QUANTIZATION": "none", "MODBOT_CACHE_DIR": str(tmp_path / "cache")}


def test_classify_uses_the_registrys_active_version_and_says_so(tmp_path, registry):
    done = _modbot(["classify", "--json", "hello there"], tmp_path, **registry)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1])["adapter_version"] == "v2"
    notice = [line for line in done.stderr.splitlines() if line.startswith("modbot: ")]
    assert notice == [f"modbot: {registry['MODBOT_MODEL']} with adapter v2 (version 2, the active version in "
                      f"{registry['MODBOT_DB']})"]


def test_eval_uses_the_registrys_active_version_and_says_so(tmp_path, registry):
    done = _modbot(["eval", "--data", "data.csv", "--json"], tmp_path, **registry)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1])["adapter"] == "v2"
    assert f"with adapter v2 (version 2, the active version in {registry['MODBOT_DB']}) on 3 messages" in done.stderr


@pytest.mark.parametrize("choice", ["MODBOT_ADAPTER", "--adapter"])
def test_an_adapter_chosen_in_the_shell_wins_over_the_registry(tmp_path, registry, first_adapter, choice):
    if choice == "--adapter":
        done = _modbot(["classify", "--json", "--adapter", str(first_adapter), "hello there"], tmp_path, **registry)
    else:
        done = _modbot(["classify", "--json", "hello there"], tmp_path, MODBOT_ADAPTER=str(first_adapter),
                       **registry)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1])["adapter_version"] == "first"
    assert "active version" not in done.stderr
