"""The Ray Serve backend against a real local Ray instance (no mock of Ray) with the tiny model.

One Ray instance and one application for the module: starting Ray costs about 10 s, each replica a model load.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import ray
from ray import serve

from model import AdapterError, InferenceBackend, ModelError, ModelSettings
from model.adapter import PEFT_WEIGHTS_FILE
from model.local_backend import LocalBackend
from model.ray_app import DEPLOYMENT_NAME, ServeOptions, build_app
from model.ray_backend import RayBackend

from .helpers import make_lora_adapter
from .test_torch_free_imports import HEAVY

REPO = Path(__file__).resolve().parents[2]
APP = "modbot-test"
MESSAGES = [
    "what time is the meeting tomorrow",
    "shut up you stupid idiot",
    "",
    "those people are vermin and should leave",
    None,
    "you are a good friend and i like you " * 40,  # read in several windows
] + [f"message number {i} for the batch" for i in range(20)]


@pytest.fixture(scope="module")
def adapters(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("ray-adapters")
    settings = ModelSettings(model=str(tiny_model_dir), device="cpu", quantization="none",
                             use_default_adapter=False, cache_dir=root / "cache")
    first = make_lora_adapter(settings, root / "v1", seed=1)
    second = make_lora_adapter(settings, root / "v2", seed=2)
    corrupt = root / "corrupt"
    shutil.copytree(first, corrupt)
    weights = corrupt / PEFT_WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:100])  # passes read_adapter, fails to load
    return replace(settings, adapter=first), first, second, corrupt


@pytest.fixture(scope="module")
def ray_app(adapters):
    """A local Ray instance serving the tiny model with adapter v1 from two replicas; its address."""
    settings = adapters[0]
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    try:
        serve.start(proxy_location="Disabled")
        options = ServeOptions(replicas=2, num_cpus=0.5, max_batch_size=8)
        serve.run(build_app(settings, options), name=APP, route_prefix=None)
        yield ray.get_runtime_context().gcs_address
    finally:
        serve.shutdown()
        ray.shutdown()


@pytest.fixture
def client(ray_app):
    backend = RayBackend(app_name=APP)
    yield backend
    backend.close()


def in_process(settings: ModelSettings, adapter: Path | None) -> list:
    backend = LocalBackend.from_settings(replace(settings, adapter=adapter, use_default_adapter=adapter is not None))
    try:
        return backend.classify(MESSAGES)
    finally:
        backend.close()


def assert_same(got, expected) -> None:
    assert [p.label for p in got] == [p.label for p in expected]
    assert [p.adapter_version for p in got] == [p.adapter_version for p in expected]
    assert [(p.skipped, p.windows, p.truncated) for p in got] == [(p.skipped, p.windows, p.truncated) for p in expected]
    for g, e in zip(got, expected, strict=True):
        assert g.probabilities == pytest.approx(e.probabilities, abs=1e-5)


def replica_names() -> set[str]:
    """The Serve replicas' actor names: a restarted replica comes back under a new name."""
    return {a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if DEPLOYMENT_NAME in a["name"]}


def test_the_application_labels_as_the_in_process_classifier(adapters, client):
    settings, first, _, _ = adapters
    assert isinstance(client, InferenceBackend)
    served = client.served()
    assert (served.backend, served.adapter_version, served.adapter_path) == ("ray", "test-1", first.resolve())
    assert client.model_name == str(settings.model)
    assert_same(client.classify(MESSAGES), in_process(settings, first))


def test_a_promotion_changes_what_the_replicas_serve_without_restarting_them(adapters, client):
    settings, first, second, _ = adapters
    replicas = replica_names()
    assert len(replicas) == 2
    assert client.serve_adapter(second).adapter_version == "test-2"
    assert_same(client.classify(MESSAGES), in_process(settings, second))
    # Another client (a second bot process) still asking for v1 gets v1: the version travels with the request.
    other = RayBackend(app_name=APP)
    assert other.adapter_version == "test-1"
    assert_same(other.classify(MESSAGES), in_process(settings, first))
    assert client.serve_adapter(None).adapter_version == "zero-shot"
    assert_same(client.classify(MESSAGES), in_process(settings, None))
    client.serve_adapter(first)
    assert replica_names() == replicas


def test_a_bad_adapter_is_refused_and_the_previous_version_keeps_serving(adapters, client, tmp_path):
    settings, first, _, corrupt = adapters
    before = client.served()
    with pytest.raises(AdapterError, match="does not exist"):
        client.serve_adapter(tmp_path / "nothing-here")
    # Passes the client's check; the replica that tries to load it says why it cannot.
    with pytest.raises(AdapterError, match="could not be loaded") as refused:
        client.serve_adapter(corrupt)
    assert "Traceback" not in str(refused.value) and str(corrupt) in str(refused.value)
    assert client.served() == before
    assert_same(client.classify(MESSAGES), in_process(settings, first))


def test_a_replica_that_cannot_load_the_version_a_message_asks_for_says_why(adapters, client):
    """As when one replica reads the adapter and another cannot (a node without the shared directory)."""
    settings, first, _, corrupt = adapters
    response = client._handle_for(str(corrupt.resolve())).classify.remote("hello")
    with pytest.raises(AdapterError, match="could not be loaded") as raised:
        client._call(response)
    assert "Traceback" not in str(raised.value) and "ray::" not in str(raised.value)
    assert_same(client.classify(MESSAGES), in_process(settings, first))


def test_an_application_that_does_not_exist_is_named(ray_app):
    with pytest.raises(ModelError, match="No Ray Serve application named 'not-deployed'.*modbot serve"):
        RayBackend(app_name="not-deployed")


def test_the_settings_choose_the_backend_and_the_application():
    settings = ModelSettings.from_env({"MODBOT_BACKEND": "Ray", "RAY_ADDRESS": "10.0.0.5:6379", "MODBOT_RAY_APP": "mod"})
    assert (settings.backend, settings.ray_address, settings.ray_app) == ("ray", "10.0.0.5:6379", "mod")
    default = ModelSettings.from_env({})
    assert (default.backend, default.ray_address, default.ray_app) == ("local", None, "modbot")
    with pytest.raises(ModelError, match="MODBOT_BACKEND='gpu' is not valid"):
        ModelSettings.from_env({"MODBOT_BACKEND": "gpu"})


def test_a_bot_configured_for_another_model_is_told(ray_app):
    with pytest.raises(ModelError, match="serves .*tiny.* but MODBOT_MODEL is smollm2-135m"):
        RayBackend.from_settings(ModelSettings(backend="ray", ray_app=APP))


def run_python(code: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """A separate process as a bot or `modbot serve` started from another shell: without the RAY_AUTH_MODE that
    this process's ray.init set for itself (the cluster's token is in ~/.ray/auth_token)."""
    inherited = {key: value for key, value in os.environ.items() if key != "RAY_AUTH_MODE"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180, cwd=REPO,
                          env={**inherited, **(env or {})})


def test_the_bot_side_is_a_thin_client_without_torch(adapters, ray_app):
    """A separate process, as the bot would be: it joins the cluster, classifies, and never imports torch."""
    settings, first, _, _ = adapters
    code = (
        "import json, sys\n"
        "from model import ModelSettings\n"
        "from model.backends import create_backend\n"
        "backend = create_backend(ModelSettings.from_env())\n"
        f"predictions = backend.classify({MESSAGES!r})\n"
        "backend.close()\n"
        "print(json.dumps({'labels': [p.label for p in predictions], 'version': backend.adapter_version,\n"
        "                  'modules': sorted(m for m in sys.modules if '.' not in m)}))\n"
    )
    result = run_python(code, {"MODBOT_BACKEND": "ray", "RAY_ADDRESS": ray_app, "MODBOT_RAY_APP": APP,
                               "MODBOT_MODEL": str(settings.model)})
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["labels"] == [p.label for p in in_process(settings, first)]
    assert out["version"] == "test-1"
    assert not set(HEAVY) & set(out["modules"])


def test_modbot_serve_deploys_on_a_running_cluster_and_stops(adapters, ray_app):
    settings, _, second, _ = adapters
    env = {"RAY_ADDRESS": ray_app, "MODBOT_MODEL": str(settings.model), "MODBOT_ADAPTER": str(second),
           "MODBOT_DEVICE": "cpu", "MODBOT_QUANTIZATION": "none", "MODBOT_CACHE_DIR": str(settings.cache_dir),
           "MODBOT_RAY_APP": "modbot-cli-test"}
    serve_cmd = "from bot.cli import main; import sys; sys.exit(main(sys.argv[1:]))"
    deployed = subprocess.run([sys.executable, "-c", serve_cmd, "serve", "--num-cpus", "0.5", "--max-batch-size", "4"],
                              capture_output=True, text=True, timeout=180, cwd=REPO, env={**os.environ, **env})
    assert deployed.returncode == 0, deployed.stderr[-2000:]
    assert "serves" in deployed.stdout and "test-2" in deployed.stdout
    assert f"MODBOT_BACKEND=ray RAY_ADDRESS={ray_app}" in deployed.stdout
    backend = RayBackend(app_name="modbot-cli-test")
    assert backend.adapter_version == "test-2"
    assert_same(backend.classify(MESSAGES), in_process(settings, second))
    stopped = subprocess.run([sys.executable, "-c", serve_cmd, "serve", "--stop"], capture_output=True, text=True,
                             timeout=120, cwd=REPO, env={**os.environ, **env})
    assert stopped.returncode == 0, stopped.stderr[-2000:]
    assert "modbot-cli-test" not in serve.status().applications


def test_a_replica_that_cannot_start_is_explained_by_its_own_sentence(ray_app):
    """What `modbot serve` says when the replicas fail (checked by hand with a truncated adapter: Ray retries the
    replica for about 40 s, too long for every test run): the sentence of modbot's error in the replica's traceback."""
    from bot.commands.serve import _replica_error

    raised = RuntimeError("Deploying application x failed.\nray::ServeReplica:x:Classifier.initialize_and_get_metadata()"
                          "\n  File \"model/loader.py\", line 3\nmodel.errors.AdapterError: Adapter /a could not be "
                          "loaded (invalid header length). Retrain or restore it.\n")
    assert _replica_error("not-deployed", raised) == ("Adapter /a could not be loaded (invalid header length). "
                                                      "Retrain or restore it.")
    assert _replica_error("not-deployed", RuntimeError("Serve: boom\nthe last line")) == "the last line"


@pytest.mark.parametrize(("options", "says"), [
    (["--replicas", "3", "--num-cpus", "1"], "need 3 CPUs, but the Ray cluster has 2"),
    (["--num-cpus", "1.5"], "need 1.5 CPUs, but only 1 of the Ray cluster's 2 are free"),  # the test app holds 1
    (["--num-gpus", "1"], "need 1 GPUs, but the Ray cluster has 0"),
])
def test_modbot_serve_refuses_replicas_the_cluster_cannot_place(adapters, ray_app, options, says):
    settings = adapters[0]
    env = {"RAY_ADDRESS": ray_app, "MODBOT_MODEL": str(settings.model), "MODBOT_ADAPTER": str(settings.adapter),
           "MODBOT_RAY_APP": "modbot-too-big"}
    serve_cmd = "from bot.cli import main; import sys; sys.exit(main(sys.argv[1:]))"
    result = subprocess.run([sys.executable, "-c", serve_cmd, "serve", *options], capture_output=True, text=True,
                            timeout=120, cwd=REPO, env={**os.environ, **env})
    assert result.returncode == 2, result.stderr[-2000:]
    assert says in result.stderr and "Traceback" not in result.stderr
    assert "modbot-too-big" not in serve.status().applications


@pytest.mark.parametrize(("env", "says"), [
    ({"RAY_ADDRESS": "127.0.0.1:1"}, "Ray is not reachable at RAY_ADDRESS=127.0.0.1:1"),
    ({"RAY_ADDRESS": "nowhere"}, "is not an address"),
    ({"MODBOT_BACKEND": "remote"}, "MODBOT_BACKEND='remote' is not valid"),
])
def test_modbot_serve_says_what_is_wrong_in_one_line(env, says):
    serve_cmd = "from bot.cli import main; import sys; sys.exit(main(sys.argv[1:]))"
    result = subprocess.run([sys.executable, "-c", serve_cmd, "serve"], capture_output=True, text=True, timeout=60,
                            cwd=REPO, env={**os.environ, **env})
    assert result.returncode == 2
    assert says in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0
