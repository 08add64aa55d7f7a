from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from app.main import tune_garbage_collector
from tests.conftest import make_settings


@pytest.fixture
def restore_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restore_gc")
def test_young_generation_threshold_is_applied_and_zero_keeps_it() -> None:
    gc.set_threshold(700, 10, 10)
    tune_garbage_collector(make_settings(gc_freeze=False, gc_gen0_threshold=0))
    assert gc.get_threshold() == (700, 10, 10)
    tune_garbage_collector(make_settings(gc_freeze=False, gc_gen0_threshold=5000))
    assert gc.get_threshold() == (5000, 10, 10)


@pytest.mark.usefixtures("restore_gc")
def test_freeze_moves_the_heap_out_of_reach() -> None:
    gc.unfreeze()
    tune_garbage_collector(make_settings(gc_freeze=True, gc_gen0_threshold=0))
    assert gc.get_freeze_count() > 0
