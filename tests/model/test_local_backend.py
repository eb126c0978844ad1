"""The local backend on the tiny GPT-J: one base loaded once, adapter versions swapped on it between batches."""

from __future__ import annotations

import json
import threading
from dataclasses import replace

import pytest
import torch
from safetensors.torch import save_file

import model.local_backend as local_backend
from model import (
    LABELS,
    TEMPLATE_ID,
    AdapterError,
    Classifier,
    InferenceBackend,
    LocalBackend,
    ModelError,
    create_backend,
)
from model.adapter import METADATA_FILE, ONE_D_WEIGHTS_FILE, base_fingerprint
from model.classifier import _is_merged

from .helpers import make_lora_adapter
from .test_torch_free_imports import HEAVY, modules_loaded_by

MESSAGES = [
    "you are a good friend",
    "shut up you stupid idiot",
    "those people are vermin",
    "what time is the meeting tomorrow? " * 3,
]

# (quantization, inference): fp32 served from a packed, merged serving copy; fp32 merged in place; 8-bit as loaded.
SERVING_PATHS = [("none", "auto"), ("none", "fp32"), ("8bit", "auto")]


def alone(settings, adapter=None):
    """What a classifier built for this adapter alone (a base of its own, the old way) predicts."""
    return Classifier.from_settings(replace(settings, adapter=adapter)).classify(MESSAGES)


def assert_same(got, expected):
    for a, b in zip(got, expected, strict=True):
        assert a.label == b.label and a.adapter_version == b.adapter_version
        for label in LABELS:
            assert a.probabilities[label] == pytest.approx(b.probabilities[label], abs=1e-6)


def differ(one, other) -> bool:
    return any(abs(a.probabilities["hate"] - b.probabilities["hate"]) > 1e-3 for a, b in zip(one, other, strict=True))


def count_base_loads(monkeypatch) -> list:
    calls = []
    real = local_backend.load_base

    def counting(settings):
        calls.append(settings)
        return real(settings)

    monkeypatch.setattr(local_backend, "load_base", counting)
    return calls


def base_tensors(base) -> dict:
    """Each base parameter's identity and storage, by its name without PEFT's wrapping (``base_layer``)."""
    return {name.replace(".base_layer", ""): (id(p), p.data_ptr()) for name, p in base.named_parameters()
            if "lora_" not in name}


@pytest.fixture
def two_adapters(tiny_settings, tmp_path):
    return make_lora_adapter(tiny_settings, tmp_path / "a", seed=1), make_lora_adapter(tiny_settings, tmp_path / "b", seed=2)


@pytest.mark.parametrize(("quantization", "inference"), SERVING_PATHS)
def test_swaps_serve_each_adapter_as_it_serves_alone_on_one_base(tiny_settings, two_adapters, monkeypatch,
                                                                   quantization, inference):
    settings = replace(tiny_settings, quantization=quantization, inference=inference)
    first, second = two_adapters
    expected = {first: alone(settings, first), second: alone(settings, second), None: alone(settings)}
    assert differ(expected[first], expected[second]) and differ(expected[first], expected[None])

    loads = count_base_loads(monkeypatch)
    backend = LocalBackend.from_settings(replace(settings, adapter=first))
    base = backend.base.model
    weights = base_tensors(base)
    assert_same(backend.classify(MESSAGES), expected[first])
    for adapter in (second, None, first, second, first):
        served = backend.serve_adapter(adapter)
        assert served == backend.served() and served.adapter_path == adapter
        assert backend.adapter_version == (expected[adapter][0].adapter_version)
        assert_same(backend.classify(MESSAGES), expected[adapter])
    assert len(loads) == 1  # the base was loaded once, for the backend's whole life
    assert backend.base.model is base
    assert base_tensors(base) == weights  # the very tensors it was loaded with
    # The adapters swapped out were deleted: only the one served remains on the base.
    assert list(backend._peft.peft_config) == [backend._lora_name]
    backend.close()
    with pytest.raises(ModelError, match="closed"):
        backend.classify(MESSAGES)


def broken_adapters(settings, other_settings, tmp_path):
    """(adapter directory, what the refusal says) for adapters the loader refuses."""
    corrupt = make_lora_adapter(settings, tmp_path / "corrupt", seed=3)
    (corrupt / "adapter_model.safetensors").write_bytes(b"not a safetensors file")
    bad_config = make_lora_adapter(settings, tmp_path / "bad-config", seed=4)
    (bad_config / "adapter_config.json").write_text("{broken", encoding="utf-8")
    return [
        (tmp_path / "missing", "does not exist"),
        (corrupt, "could not be loaded"),
        (bad_config, "could not be loaded"),
        (make_lora_adapter(settings, tmp_path / "labels", labels=["spam", "ham"]), "labels"),
        (make_lora_adapter(other_settings, tmp_path / "other-base"), "trained on base model"),
    ]


@pytest.mark.parametrize(("quantization", "inference"), SERVING_PATHS)
def test_a_broken_adapter_is_refused_and_the_previous_one_keeps_serving(tiny_settings, tiny_multitoken_model_dir,
                                                                        two_adapters, tmp_path, quantization,
                                                                        inference):
    settings = replace(tiny_settings, quantization=quantization, inference=inference)
    first, _ = two_adapters
    broken = broken_adapters(tiny_settings, replace(tiny_settings, model=str(tiny_multitoken_model_dir)), tmp_path)
    for serving in (first, None):  # a LoRA adapter serving, then the bare base (the first LoRA wraps it)
        expected = alone(settings, serving)
        backend = LocalBackend.from_settings(replace(settings, adapter=serving, use_default_adapter=False))
        before = backend.served()
        backend.classify(MESSAGES)
        for path, says in broken:
            with pytest.raises(AdapterError, match=says) as refused:
                backend.serve_adapter(path)
            # The same sentence the loader gives when the adapter is loaded on a base of its own.
            with pytest.raises(AdapterError) as by_loader:
                Classifier.from_settings(replace(settings, adapter=path))
            assert str(refused.value) == str(by_loader.value)
            assert backend.served() == before
            assert_same(backend.classify(MESSAGES), expected)
            if inference == "fp32" and serving is not None:  # served merged again, not computed on the side
                assert _is_merged(backend._classifier.loaded.model)
        if serving is None:  # the refused adapter left nothing on the base
            assert backend._peft is None and not hasattr(backend.base.model, "peft_config")
            assert not any("lora_" in name for name, _ in backend.base.model.named_parameters())
        backend.close()


def test_a_swap_that_cannot_be_served_puts_the_previous_adapter_back(tiny_settings, two_adapters, monkeypatch):
    first, second = two_adapters
    expected = alone(tiny_settings, first)
    backend = LocalBackend.from_settings(replace(tiny_settings, adapter=first))
    real_build = local_backend.Classifier.prepare_serving
    failures = []

    def out_of_memory_once(self):
        if not failures and self.loaded.adapter is not None and self.loaded.adapter.path == second:
            failures.append(1)
            raise RuntimeError("DefaultCPUAllocator: not enough memory")
        return real_build(self)

    monkeypatch.setattr(local_backend.Classifier, "prepare_serving", out_of_memory_once)
    with pytest.raises(ModelError, match=r"could not be served \(DefaultCPUAllocator.*test-1 is served again"):
        backend.serve_adapter(second)
    assert backend.adapter_version == "test-1" and backend.served().adapter_path == first
    assert_same(backend.classify(MESSAGES), expected)
    backend.serve_adapter(second)  # once memory allows, the swap goes through
    assert_same(backend.classify(MESSAGES), alone(tiny_settings, second))


def one_d_adapter(directory, backend):
    """A `1d` adapter: new values for the final norm, saved as training saves them."""
    directory.mkdir()
    final_norm = {name: p for name, p in backend.base.model.named_parameters() if name.startswith("transformer.ln_f")}
    generator = torch.Generator().manual_seed(5)
    save_file({name: (p.detach() + torch.randn(p.shape, generator=generator)).contiguous()
               for name, p in final_norm.items()}, str(directory / ONE_D_WEIGHTS_FILE))
    write_metadata(directory, backend, version="test-1d", strategy="1d")
    return directory


def write_metadata(directory, backend, **fields):
    directory.mkdir(exist_ok=True)
    metadata = {"base_model": backend.model_name, "base_fingerprint": base_fingerprint(backend.base.model.config),
                "template_id": TEMPLATE_ID, "labels": list(LABELS), **fields}
    (directory / METADATA_FILE).write_text(json.dumps(metadata), encoding="utf-8")


def test_1d_and_few_shot_adapters_swap_too_and_leave_the_base_as_it_was(tiny_settings, two_adapters, tmp_path):
    first, _ = two_adapters
    backend = LocalBackend.from_settings(tiny_settings)
    one_d = one_d_adapter(tmp_path / "one-d", backend)
    few_shot = tmp_path / "few-shot"
    write_metadata(few_shot, backend, version="test-few-shot", strategy="few-shot",
                   few_shot_examples=[["you are lovely", "neutral"], ["you idiot", "offensive"]])
    expected = {path: alone(tiny_settings, path) for path in (None, first, one_d, few_shot)}
    assert differ(expected[one_d], expected[None]) and differ(expected[few_shot], expected[None])
    original = {name: p.detach().clone() for name, p in backend.base.model.named_parameters()}
    for adapter in (one_d, first, one_d, few_shot, one_d, None, few_shot, first, None):
        backend.serve_adapter(adapter)
        assert_same(backend.classify(MESSAGES), expected[adapter])
    # A 1d adapter's values were written over the base's and put back when it was swapped out.
    assert all(torch.equal(p, original[name]) for name, p in backend.base.model.named_parameters())

    (tmp_path / "misfit").mkdir()
    save_file({"transformer.ln_f.weight": torch.ones(3)}, str(tmp_path / "misfit" / ONE_D_WEIGHTS_FILE))
    write_metadata(tmp_path / "misfit", backend, strategy="1d")
    with pytest.raises(AdapterError, match="does not fit this model"):
        backend.serve_adapter(tmp_path / "misfit")
    assert_same(backend.classify(MESSAGES), expected[None])


def test_a_batch_is_classified_wholly_with_one_adapter_while_swaps_run(tiny_settings, two_adapters):
    first, second = two_adapters
    expected = {"test-1": alone(tiny_settings, first), "test-2": alone(tiny_settings, second)}
    backend = LocalBackend.from_settings(replace(tiny_settings, adapter=first))
    stop = threading.Event()
    seen: list = []

    def classify_until_stopped():
        while not stop.is_set():
            seen.append(backend.classify(MESSAGES))

    worker = threading.Thread(target=classify_until_stopped)
    worker.start()
    try:
        for adapter in (second, first) * 3:
            backend.serve_adapter(adapter)
    finally:
        stop.set()
        worker.join()
    assert seen
    for batch in seen:
        assert len({p.adapter_version for p in batch}) == 1
        assert_same(batch, expected[batch[0].adapter_version])


def test_create_backend_serves_the_configured_adapter_through_the_protocol(tiny_settings, two_adapters):
    first, _ = two_adapters
    backend = create_backend(replace(tiny_settings, adapter=first))
    assert isinstance(backend, InferenceBackend) and isinstance(backend, LocalBackend)
    assert backend.served().backend == "local" and backend.adapter_version == "test-1"
    assert_same(backend.classify(MESSAGES), alone(tiny_settings, first))


def test_choosing_a_backend_loads_no_torch():
    assert not set(HEAVY) & modules_loaded_by("from model import create_backend, InferenceBackend")
