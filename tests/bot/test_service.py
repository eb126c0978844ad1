"""The classification service: batching on a worker thread, a bounded queue, real classifiers."""

from __future__ import annotations

import asyncio
import re
import threading

import pytest

from bot.service import ClassificationService, QueueFull
from model import Classifier

from .conftest import HATE_WORD, KeywordClassifier


class GatedClassifier(KeywordClassifier):
    """Blocks in classify() until released, so a test can fill the queue behind a running batch."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def classify(self, texts):
        self.entered.set()
        self.release.wait(10)
        return super().classify(texts)


async def test_a_full_queue_drops_counts_and_logs(caplog):
    classifier = GatedClassifier()
    service = ClassificationService(classifier, batch_size=2, queue_size=3, max_wait=0)
    first = asyncio.ensure_future(service.classify("first"))
    await asyncio.get_running_loop().run_in_executor(None, classifier.entered.wait, 10)  # batch 1 is running
    waiting = [asyncio.ensure_future(service.classify(f"m{i}")) for i in range(3)]
    await asyncio.sleep(0)
    with pytest.raises(QueueFull):
        await service.classify("one too many")
    with pytest.raises(QueueFull):
        await service.classify("and another")
    assert service.stats().dropped == 2
    assert "Classification queue full" in caplog.text and "1 message dropped, 1 since start" in caplog.text
    classifier.release.set()
    results = await asyncio.gather(first, *waiting)
    assert [r.label for r in results] == ["neutral"] * 4
    assert service.stats().classified == 4
    await service.close()


async def test_classification_errors_reach_the_caller_and_the_service_keeps_going(caplog):
    class Broken(KeywordClassifier):
        def classify(self, texts):
            if any("boom" in t for t in texts):
                raise RuntimeError("out of memory")
            return super().classify(texts)

    service = ClassificationService(Broken(), batch_size=1, max_wait=0)
    with pytest.raises(RuntimeError, match="out of memory"):
        await service.classify("boom")
    assert (await service.classify(f"{HATE_WORD}")).label == "hate"
    assert "Classifying a batch of 1 messages failed" in caplog.text
    await service.close()


async def test_tiny_real_classifier_handles_empty_and_50000_character_messages(tiny_settings):
    service = ClassificationService(Classifier.from_settings(tiny_settings), batch_size=4, max_wait=0.002)
    long_text = "word " * 10_000
    empty, long = await asyncio.gather(service.classify(""), service.classify(long_text))
    assert empty.skipped and empty.label == "neutral"
    assert long.truncated and abs(sum(long.probabilities.values()) - 1) < 1e-4
    await service.close()


async def test_a_burst_of_drops_is_logged_as_a_few_lines_with_counts(caplog):
    classifier = GatedClassifier()
    service = ClassificationService(classifier, batch_size=2, queue_size=3, max_wait=0)
    first = asyncio.ensure_future(service.classify("first"))
    await asyncio.get_running_loop().run_in_executor(None, classifier.entered.wait, 10)
    waiting = [asyncio.ensure_future(service.classify(f"m{i}")) for i in range(3)]
    await asyncio.sleep(0)
    for i in range(500):
        with pytest.raises(QueueFull):
            await service.classify(f"dropped {i}")
    classifier.release.set()
    await asyncio.gather(first, *waiting)
    await service.close()
    lines = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert 1 <= len(lines) <= 2, lines  # the first drop at once, the rest when the queue has drained
    assert sum(int(re.search(r"(\d+) messages? dropped", line).group(1)) for line in lines) == 500
    assert lines[-1].endswith("500 since start")
