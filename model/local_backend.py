"""The local backend: one base model in this process, adapter versions put on it and switched between batches.

A promotion used to build a second ``Classifier``, that is load a second base model next to the one serving,
so every swap held two bases (and two serving copies). Here the base is loaded once and every adapter is
put on that same base:

- a LoRA adapter becomes one of PEFT's named adapters: the new one is loaded next to the one serving, made
  active, and the old one deleted;
- a ``1d`` adapter's norms and biases are written over the base's, whose own values are kept to be put
  back at the next swap;
- a few-shot adapter changes only the prompt.

A swap runs under the classifier's batch lock, so each batch is classified wholly with the old adapter or
wholly with the new. Its order keeps the memory peak low: the new adapter's weights are loaded first (one
that cannot be loaded is refused there, and the old one serves on, untouched); then the old serving copy
is released and the old adapter deleted, and only then is the new serving copy built. At most two
adapters' weights and one serving copy are held at once, never a second base: bench/swap_memory.py
measures the peak against steady state.
"""

from __future__ import annotations

import gc
import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .adapter import ONE_D_WEIGHTS_FILE, AdapterInfo, brief, check_compatible, load_weights, read_adapter
from .backend import Served
from .classifier import Classifier
from .config import ModelSettings
from .errors import ModelError
from .labels import LABELS
from .loader import (
    LoadedModel,
    adapter_lacks,
    adapter_misfit,
    adapter_unloadable,
    default_adapter_dir,
    load_base,
)
from .predictions import ZERO_SHOT, Prediction
from .prompt import DEFAULT_MAX_WINDOWS, TEMPLATE_ID

log = logging.getLogger(__name__)


def _is_lora(info: AdapterInfo | None) -> bool:
    return info is not None and info.strategy not in ("1d", "few-shot")


@dataclass
class _Staged:
    """A new adapter made ready next to the serving one, not yet served."""

    info: AdapterInfo | None
    lora_name: str | None = None  # its name among the PEFT model's adapters
    one_d: dict[str, Any] | None = None  # parameter name -> tensor to write over the base's


class LocalBackend:
    """Serves one base model in this process, with the adapter version chosen by ``serve_adapter``.

    Implements ``model.InferenceBackend``. Every method blocks; ``classify`` and ``serve_adapter`` may be
    called from different threads (a swap waits for the batch in progress, and the next batch for the swap).
    """

    def __init__(self, base: LoadedModel, batch_size: int = 16, max_message_tokens: int | None = None,
                 inference: str = "auto", max_windows: int = DEFAULT_MAX_WINDOWS) -> None:
        if base.adapter is not None or hasattr(base.model, "peft_config"):
            raise ValueError("LocalBackend needs a bare base model (model.load_base), without an adapter")
        self._base = base
        # The base's own tensors by state-dict name, taken before PEFT wraps any layer: a 1d adapter's values
        # are written into these same tensors whatever wraps them.
        self._tensors = dict(base.model.state_dict(keep_vars=True))
        self._peft = None  # the PEFT model around the base while a LoRA adapter is served
        self._lora_name: str | None = None
        self._one_d_originals: dict[str, Any] = {}  # base values a served 1d adapter replaced
        self._names = itertools.count(1)
        self._classifier: Classifier | None = Classifier(base, batch_size=batch_size,
                                                         max_message_tokens=max_message_tokens,
                                                         inference=inference, max_windows=max_windows)
        self._served = self._describe(None)

    @classmethod
    def from_settings(cls, settings: ModelSettings) -> LocalBackend:
        """The base model of ``settings``, loaded once, serving the adapter it names (or the shipped one)."""
        adapter_dir = default_adapter_dir(settings)
        if adapter_dir is not None:
            read_adapter(adapter_dir)  # fail on a bad adapter before spending time on the base model
        backend = cls(load_base(settings), batch_size=settings.batch_size,
                      max_message_tokens=settings.max_message_tokens, inference=settings.inference,
                      max_windows=settings.max_windows)
        if adapter_dir is not None:
            try:
                backend.serve_adapter(adapter_dir)
            except BaseException:
                backend.close()
                raise
        return backend

    # ------------------------------------------------------------------ InferenceBackend

    @property
    def model_name(self) -> str:
        return self._base.model_name

    @property
    def adapter_version(self) -> str:
        return self._served.adapter_version

    @property
    def base(self) -> LoadedModel:
        """The base model every adapter is put on (the same object for the backend's whole life)."""
        return self._base

    def classify(self, texts: Sequence[str | None]) -> list[Prediction]:
        return self._open().classify(texts)

    def served(self) -> Served:
        return self._served

    def serve_adapter(self, path: Path | str | None) -> Served:
        """Serve the adapter at ``path`` (None: the base alone) from the next batch on.

        An adapter that cannot be used raises AdapterError with the loader's sentence, and the previous
        one is still served. The serving copy is built here, so the next batch does not wait for it.
        """
        info = None
        if path is not None:
            info = read_adapter(path)
            check_compatible(info, self._base.model_name, self._base.fingerprint, TEMPLATE_ID, LABELS)
        classifier = self._open()
        with classifier.between_batches():
            previous = self._served
            if classifier.serves_in_place:
                # PEFT unmerges the served adapter when it adds another; release it ourselves, so that a
                # refused adapter leaves it to be merged again at the next batch. (A serving copy is kept.)
                classifier.release_serving()
            staged = self._stage(info)
            classifier.release_serving()
            classifier.set_model(self._commit(staged))
            try:
                classifier.prepare_serving()
            except Exception as exc:  # out of memory, most likely: the adapter's files were fine
                reason = brief(exc)
                restored = self._restore(classifier, previous)
                raise ModelError(f"Adapter {path} was loaded but could not be served ({reason}); "
                                 f"{restored}.") from None
            self._served = self._describe(info)
        log.info("serving adapter %s on the loaded %s (was %s)", self._served.adapter_version, self.model_name,
                 previous.adapter_version)
        return self._served

    def close(self) -> None:
        classifier, self._classifier = self._classifier, None
        if classifier is None:
            return
        with classifier.between_batches():
            classifier.release_serving()
        self._peft = None
        del classifier
        gc.collect()

    # ------------------------------------------------------------------ the swap

    def _open(self) -> Classifier:
        classifier = self._classifier
        if classifier is None:
            raise ModelError("The local model backend is closed: create a new one to classify.")
        return classifier

    def _stage(self, info: AdapterInfo | None) -> _Staged:
        """Load ``info``'s weights next to what is served; on AdapterError nothing served has changed."""
        if info is None or info.strategy == "few-shot":
            return _Staged(info)
        if info.strategy == "1d":
            return _Staged(info, one_d=self._read_one_d(info))
        name = f"served_{next(self._names)}"
        device = str(self._base.device)
        try:
            if self._peft is None:
                from peft import PeftConfig
                from peft.auto import MODEL_TYPE_TO_PEFT_MODEL_MAPPING
                from peft.peft_model import PeftModel

                # PeftModel.from_pretrained in its two steps (wrap, then load the weights), so that weights
                # that cannot be loaded are undone by unwrapping the base again.
                config = PeftConfig.from_pretrained(str(info.path))
                config.inference_mode = True
                wrapper = MODEL_TYPE_TO_PEFT_MODEL_MAPPING.get(config.task_type, PeftModel)
                self._peft = wrapper(self._base.model, config, name)
                self._peft.load_adapter(str(info.path), name, is_trainable=False, torch_device=device)
                self._peft.eval()
            else:
                self._peft.load_adapter(str(info.path), name, is_trainable=False, torch_device=device)
        except Exception as exc:
            self._drop_lora(name)
            raise adapter_unloadable(info, exc) from None
        return _Staged(info, lora_name=name)

    def _read_one_d(self, info: AdapterInfo) -> dict[str, Any]:
        state = load_weights(info.path / ONE_D_WEIGHTS_FILE, device=str(self._base.device))
        lacking = [name for name in state if name not in self._tensors]
        if lacking:
            raise adapter_lacks(info, lacking)
        for name, value in state.items():
            if tuple(value.shape) != tuple(self._tensors[name].shape):
                raise adapter_misfit(info, f"{name} has shape {tuple(value.shape)}, the model's "
                                           f"{tuple(self._tensors[name].shape)}")
        return state

    def _commit(self, staged: _Staged) -> LoadedModel:
        """Serve ``staged`` in place of the current adapter, dropping the current one (the lock is held)."""
        import torch

        with torch.no_grad():
            for name, original in self._one_d_originals.items():
                self._tensors[name].copy_(original)
            self._one_d_originals = {}
            if staged.lora_name is not None:
                self._peft.set_adapter(staged.lora_name, inference_mode=True)
                if self._lora_name is not None:
                    self._peft.delete_adapter(self._lora_name)
                self._lora_name = staged.lora_name
                model = self._peft
            else:
                self._unwrap()
                model = self._base.model
            for name, value in (staged.one_d or {}).items():
                self._one_d_originals[name] = self._tensors[name].detach().clone()
                self._tensors[name].copy_(value)
        return replace(self._base, model=model, adapter=staged.info)

    def _drop_lora(self, name: str) -> None:
        """Undo a LoRA adapter that failed to load; unwrap the base if it was the only one."""
        if self._peft is None:
            return
        if self._lora_name is None:
            self._unwrap()
        elif name in self._peft.peft_config:
            # Not active, so deleting it leaves the served adapter as it was (merged in place, too).
            self._peft.delete_adapter(name)

    def _unwrap(self) -> None:
        """The base without PEFT's layers (not merged: its weights are as loaded)."""
        if self._peft is None:
            return
        self._peft.unload()
        if hasattr(self._base.model, "peft_config"):
            del self._base.model.peft_config
        self._peft = None
        self._lora_name = None

    def _restore(self, classifier: Classifier, previous: Served) -> str:
        """Serve ``previous`` again after a failed swap; says what is served now, for the error."""
        try:
            info = read_adapter(previous.adapter_path) if previous.adapter_path is not None else None
            classifier.release_serving()
            classifier.set_model(self._commit(self._stage(info)))
            self._served = self._describe(info)
            return f"{previous.adapter_version} is served again"
        except Exception as exc:
            log.error("the previous adapter %s could not be put back either: %s", previous.adapter_version, exc)
            info = classifier.loaded.adapter
            self._served = self._describe(info)
            return (f"the previous adapter could not be put back either ({brief(exc)}), so "
                    f"{self._served.adapter_version} stays loaded and is tried again at the next batch")

    def _describe(self, info: AdapterInfo | None) -> Served:
        return Served("local", self._base.model_name, info.version if info else ZERO_SHOT,
                      info.path if info else None)

