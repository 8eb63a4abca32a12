"""Settings at run time: vramcache.set_allocator_settings, and
torch.cuda.memory._set_allocator_settings routed to it while vramcache is installed (against
fake_torch.py, on the simulated device). What may change applies to the next request; anything
else is refused with its name, and a refused text changes nothing."""

import sys

import pytest
from fake_torch import FakeTorch

import vramcache
from vramcache import _torch

MiB = 1 << 20


def max_split_size():
    return vramcache.memory_stats()["max_split_size"]


def test_in_use_the_runtime_keys_change(sim):
    ptr = vramcache.caching_allocator_alloc(MiB, 0, 0)
    assert max_split_size() == -1
    vramcache.set_allocator_settings("max_split_size_mb:64,garbage_collection_threshold:0.8")
    assert max_split_size() == 64 * MiB
    vramcache.caching_allocator_delete(ptr)


def test_in_use_a_fixed_key_is_refused_and_nothing_changes(sim):
    ptr = vramcache.caching_allocator_alloc(MiB, 0, 0)
    with pytest.raises(vramcache.VramcacheError, match="expandable_segments"):
        vramcache.set_allocator_settings("max_split_size_mb:64,expandable_segments:True")
    assert max_split_size() == -1
    with pytest.raises(vramcache.VramcacheError, match="max_split_size_mb"):
        vramcache.set_allocator_settings("max_split_size_mb:lots")
    with pytest.raises(TypeError):
        vramcache.set_allocator_settings(64)
    assert max_split_size() == -1
    vramcache.caching_allocator_delete(ptr)


def test_before_the_first_allocation_any_key_applies(sim):
    vramcache.set_allocator_settings("max_split_size_mb:64,expandable_segments:True")
    ptr = vramcache.caching_allocator_alloc(MiB, 0, 0)
    assert max_split_size() == 64 * MiB
    vramcache.caching_allocator_delete(ptr)


@pytest.fixture
def fake(monkeypatch, sim):
    monkeypatch.setattr(_torch, "_installed", None)
    monkeypatch.setattr(_torch, "_installed_conf", None)
    fake = FakeTorch()
    monkeypatch.setitem(sys.modules, "torch", fake)
    vramcache.install(native=False)
    return fake


def test_torch_set_allocator_settings_reaches_vramcache(fake):
    ptr = vramcache.caching_allocator_alloc(MiB, 0, 0)
    fake.cuda.memory._set_allocator_settings("max_split_size_mb:128")
    assert max_split_size() == 128 * MiB
    assert fake.settings == ["max_split_size_mb:128"]  # PyTorch's own still runs
    # A refusal raises before PyTorch's own function changes anything.
    with pytest.raises(vramcache.VramcacheError, match="cannot change"):
        fake.cuda.memory._set_allocator_settings("expandable_segments:True")
    assert fake.settings == ["max_split_size_mb:128"]
    assert max_split_size() == 128 * MiB
    vramcache.caching_allocator_delete(ptr)


def test_set_allocator_settings_is_routed_once(fake):
    routed = fake.cuda.memory._set_allocator_settings
    _torch._allocator_settings.route(fake)
    assert fake.cuda.memory._set_allocator_settings is routed
