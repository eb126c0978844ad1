"""The classifier: texts in, one Prediction per text out. Synchronous; the bot calls it from a worker thread."""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from .config import INFERENCE_PRECISIONS, ModelSettings
from .fast_path import PrefixScorer, can_pack_linears, pack_linears, supports_prefix_cache
from .labels import LABELS, most_severe
from .loader import LoadedModel, load_model
from .predictions import ZERO_SHOT, Prediction
from .prompt import DEFAULT_MAX_WINDOWS, PromptBuilder, PromptIds, normalize_message
from .scoring import label_log_likelihoods

log = logging.getLogger(__name__)

class Classifier:
    """Labels messages hate / offensive / neutral by scoring each label as the prompt's completion.

    Serving is arranged on first use and whenever the model or adapter changes, for a non-quantised base:

    - ``inference="auto"`` on the CPU (for models up to PACK_LIMIT_BYTES of linear weights): a serving copy
      with the LoRA adapter merged and the linear layers packed for oneDNN, the same fp32 arithmetic;
    - ``"fp32"`` (and ``"auto"`` elsewhere): the loaded model, its LoRA adapter merged in place with peft's
      ``merge_adapter``, unmerged again by ``set_model``;
    - ``"bf16"``: a bfloat16 serving copy with the adapter merged.

    The loaded model keeps its unmerged adapter for swapping and training in every case (after
    ``set_model`` for ``"fp32"``). The instruction prefix's key/value cache is computed once for the
    serving weights. A quantised base is served as loaded, its adapter unmerged.
    """

    def __init__(self, loaded: LoadedModel, batch_size: int = 16, max_message_tokens: int | None = None,
                 inference: str = "auto", max_windows: int = DEFAULT_MAX_WINDOWS) -> None:
        if inference not in INFERENCE_PRECISIONS:
            raise ValueError(f"inference must be one of {INFERENCE_PRECISIONS}, not {inference!r}")
        self.batch_size = batch_size
        self.max_windows = max_windows
        self.inference = inference
        self._max_message_tokens = max_message_tokens
        # Reentrant: LocalBackend holds it across a whole adapter swap and calls set_model inside it.
        self._lock = threading.RLock()
        self._serving: _Serving | None = None
        self._use(loaded)

    @classmethod
    def from_settings(cls, settings: ModelSettings) -> Classifier:
        return cls(load_model(settings), batch_size=settings.batch_size, max_message_tokens=settings.max_message_tokens,
                   inference=settings.inference, max_windows=settings.max_windows)

    def set_model(self, loaded: LoadedModel) -> None:
        """Serve another loaded model or adapter from now on; the previous one is left unmerged."""
        with self._lock:
            self._release()
            self._use(loaded)

    @contextmanager
    def between_batches(self) -> Iterator[None]:
        """Hold classification off while the caller changes what is served: a batch sees the old or the new.

        Reentrant, so ``set_model``, ``release_serving`` and ``prepare_serving`` may be called inside it.
        """
        with self._lock:
            yield

    def release_serving(self) -> None:
        """Drop the serving copy now (its memory with it); the next batch, or ``prepare_serving``, builds it again."""
        with self._lock:
            self._release()

    def prepare_serving(self) -> None:
        """Build the serving copy for the current model now, so that the next batch does not wait for it."""
        with self._lock:
            self._serving_for_current_model()

    @property
    def serves_in_place(self) -> bool:
        """Whether batches run on the loaded model itself (merged in place, or quantised), not on a serving copy."""
        with self._lock:
            return self._serving is not None and self._serving.model is self.loaded.model

    def _use(self, loaded: LoadedModel) -> None:
        self.loaded = loaded
        budget = self._max_message_tokens or 256
        if loaded.adapter is not None and loaded.adapter.max_message_tokens:
            budget = loaded.adapter.max_message_tokens  # serve with the budget it was trained with
        examples = loaded.adapter.few_shot_examples if loaded.adapter else ()
        self.prompts = PromptBuilder(loaded.tokenizer, max_message_tokens=budget, examples=examples)

    @property
    def model_name(self) -> str:
        return self.loaded.model_name

    @property
    def adapter_version(self) -> str:
        return self.loaded.adapter_version or ZERO_SHOT

    @property
    def is_zero_shot(self) -> bool:
        return self.loaded.adapter is None

    def classify(self, texts: Sequence[str | None]) -> list[Prediction]:
        """One Prediction per text, in order. Texts with nothing in them are skipped (neutral, no model call).

        A text longer than the token budget is read in overlapping windows (all of them batched with the
        other texts' prompts); the most severe window gives its label and probabilities.
        """
        with self._lock:
            results: list[Prediction | None] = [None] * len(texts)
            window_rows: dict[int, list[list[float]]] = {}
            pending: list[tuple[int, PromptIds]] = []
            for index, text in enumerate(texts):
                message = normalize_message(text) if text else ""
                if not message:
                    results[index] = self._skipped()
                    continue
                windows = self.prompts.encode_windows(message, self.max_windows, normalized=True)
                window_rows[index] = []
                pending += [(index, window) for window in windows]
            # Similar lengths share a batch, so less of each batch is padding.
            pending.sort(key=lambda item: len(item[1]))
            truncated: set[int] = set()
            serving = self._serving_for_current_model() if pending else None
            for start in range(0, len(pending), self.batch_size):
                chunk = pending[start : start + self.batch_size]
                scores = serving.score([prompt for _, prompt in chunk])
                for (index, prompt), row in zip(chunk, scores.softmax(dim=-1).tolist(), strict=True):
                    window_rows[index].append(row)
                    if prompt.truncated:
                        truncated.add(index)
            for index, rows in window_rows.items():
                row = rows[most_severe(rows)]
                results[index] = self._prediction(row, truncated=index in truncated, windows=len(rows))
            return results  # type: ignore[return-value]

    def _serving_for_current_model(self) -> _Serving:
        """The weights and prefix cache to serve with, rebuilt when the model, adapter or active adapter changed."""
        key = _serving_key(self.loaded)
        if self._serving is None or self._serving.key != key:
            self._release()
            self._serving = _Serving.build(self.loaded, self.prompts, self.inference, key)
        return self._serving

    def _release(self) -> None:
        if self._serving is not None:
            self._serving.release()
            self._serving = None

    def _prediction(self, row: Sequence[float], truncated: bool, windows: int = 1) -> Prediction:
        probabilities = {label: float(p) for label, p in zip(LABELS, row, strict=True)}
        label = max(probabilities, key=probabilities.__getitem__)
        return Prediction(label, probabilities, self.model_name, self.adapter_version, truncated=truncated,
                          windows=windows)

    def _skipped(self) -> Prediction:
        probabilities = {label: 1.0 if label == "neutral" else 0.0 for label in LABELS}
        return Prediction("neutral", probabilities, self.model_name, self.adapter_version, skipped=True)


def _serving_key(loaded: LoadedModel) -> tuple:
    model = loaded.model
    return (id(model), loaded.adapter_version, getattr(model, "active_adapter", None))


# Packing copies the weights: above this much in linear layers, "auto" serves the loaded model as it is.
PACK_LIMIT_BYTES = 2 * 1024**3


def _body(model):
    """The decoder stack of a (merged) transformers CausalLM, without its output head."""
    return getattr(model, model.base_model_prefix)


def _packable(model, device) -> bool:
    import torch

    if device.type != "cpu" or not can_pack_linears():
        return False
    linear = [m.weight for m in model.modules() if isinstance(m, torch.nn.Linear)]
    if not linear or any(w.dtype != torch.float32 for w in linear):
        return False
    return sum(w.numel() * w.element_size() for w in linear) <= PACK_LIMIT_BYTES


def _is_lora(model) -> bool:
    config = getattr(model, "active_peft_config", None)
    return config is not None and str(getattr(config, "peft_type", "")).upper().endswith("LORA")


def _is_merged(model) -> bool:
    from peft.tuners.tuners_utils import BaseTunerLayer

    return any(module.merged for module in model.modules() if isinstance(module, BaseTunerLayer))


@dataclass
class _Serving:
    """The model that scores (the loaded one, merged in place, or a bfloat16 copy) and its prefix cache."""

    key: tuple
    model: object
    prompts: PromptBuilder
    pad_id: int
    device: object
    scorer: PrefixScorer | None
    mode: str  # what ``inference`` came to: fp32, fp32-packed, bf16, or the quantisation as loaded
    merged_in_place: bool = False

    @classmethod
    def build(cls, loaded: LoadedModel, prompts: PromptBuilder, inference: str, key: tuple) -> _Serving:
        import torch

        model = loaded.model
        merged_in_place = False
        if loaded.quantization != "none":
            inference = loaded.quantization
        else:
            if inference == "auto":
                inference = "fp32-packed" if _packable(model, loaded.device) else "fp32"
            if inference in ("bf16", "fp32-packed"):
                # A copy, so that the loaded model (and its unmerged adapter) stays as it was.
                model = copy.deepcopy(model)
                if _is_lora(model):
                    model = model.merge_and_unload()
                if inference == "bf16":
                    model = model.to(torch.bfloat16)
                else:
                    pack_linears(_body(model))
                model.eval()
            elif _is_lora(model) and not _is_merged(model):
                model.merge_adapter()
                merged_in_place = True
        pad_id = loaded.tokenizer.pad_token_id
        scorer = None
        if supports_prefix_cache(model):
            scorer = PrefixScorer(model, prompts.prefix, prompts.label_ids, pad_id, loaded.device)
        merged = loaded.quantization == "none" and _is_lora(loaded.model)
        log.info("serving %s (adapter %s, %s%s) with %s, %d threads", loaded.model_name,
                 loaded.adapter_version or ZERO_SHOT, inference, ", LoRA merged" if merged else "",
                 "the cached instruction prefix" if scorer else "full prompts", torch.get_num_threads())
        return cls(key, model, prompts, pad_id, loaded.device, scorer, inference, merged_in_place)

    def score(self, prompts: Sequence[PromptIds]):
        if self.scorer is not None and all(prompt.prefix == self.prompts.prefix for prompt in prompts):
            return self.scorer.score([(*prompt.message, *prompt.suffix) for prompt in prompts])
        return label_log_likelihoods(self.model, [prompt.ids for prompt in prompts], self.prompts.label_ids,
                                     self.pad_id, self.device)

    def release(self) -> None:
        if self.merged_in_place and _is_merged(self.model):
            self.model.unmerge_adapter()
        self.merged_in_place = False
