"""aigc_lib.storage: atomic writes leave the old or the new content, cache keys follow recipe and code."""
from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from aigc_lib.storage import (
    atomic_dir,
    atomic_write,
    cache_key,
    load_model_entry,
    save_model_entry,
    source_hash,
)


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    path = tmp_path / "sub" / "a.json"
    atomic_write(path, "one")
    atomic_write(path, b"two")
    assert path.read_text() == "two"
    assert [p.name for p in path.parent.iterdir()] == ["a.json"]


def test_atomic_dir_keeps_the_old_folder_when_the_block_fails(tmp_path):
    folder = tmp_path / "model"
    with atomic_dir(folder) as tmp:
        (tmp / "w.bin").write_text("v1")
    with pytest.raises(RuntimeError), atomic_dir(folder) as tmp:
        (tmp / "w.bin").write_text("half")
        raise RuntimeError("interrupted")
    assert (folder / "w.bin").read_text() == "v1"
    with atomic_dir(folder) as tmp:
        (tmp / "w.bin").write_text("v2")
    assert (folder / "w.bin").read_text() == "v2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temp or old folders left


@dataclass(frozen=True)
class _Recipe:
    steps: int = 10


def test_cache_key_changes_with_recipe_and_code():
    assert cache_key(_Recipe(), cache_key) == cache_key(_Recipe(), cache_key)
    assert cache_key(_Recipe(steps=11), cache_key) != cache_key(_Recipe(), cache_key)
    assert cache_key(_Recipe(), cache_key) != cache_key(_Recipe(), atomic_write)  # other code, other key
    assert cache_key({"steps": 10}) == cache_key(_Recipe())  # a dataclass keys as its dict
    assert source_hash(atomic_write) != source_hash(atomic_dir)


def test_named_recipe_takes_a_profile_name_or_an_instance_and_says_what_to_pass():
    from dataclasses import dataclass

    from aigc_lib.storage import named_recipe

    @dataclass(frozen=True)
    class Recipe:
        steps: int = 1

    recipes = {"smoke": Recipe(1), "quick": Recipe(10)}
    assert named_recipe("quick", recipes, Recipe, "toy", "RECIPES") == Recipe(10)
    own = Recipe(3)
    assert named_recipe(own, recipes, Recipe, "toy", "RECIPES") is own
    with pytest.raises(ValueError, match=r"unknown toy recipe 'huge': choose one of smoke, quick.*RECIPES\['quick'\]"):
        named_recipe("huge", recipes, Recipe, "toy", "RECIPES")
    with pytest.raises(TypeError, match="a name \\(smoke, quick\\) or a Recipe, got int"):
        named_recipe(3, recipes, Recipe, "toy", "RECIPES")


def test_model_entry_round_trip_stale_key_and_corrupt_entry(tmp_path, capsys):
    model = torch.nn.Linear(3, 2)
    path = tmp_path / "judges" / "toy-abc"
    save_model_entry(path, model.state_dict(), {"key": "abc", "width": 3})

    def build(meta: dict, weights: dict) -> torch.nn.Linear:
        rebuilt = torch.nn.Linear(meta["width"], 2)
        rebuilt.load_state_dict(weights)
        return rebuilt

    rebuilt, meta = load_model_entry(path, "abc", build, "toy", "test")
    torch.testing.assert_close(rebuilt.weight, model.weight)
    assert meta == {"key": "abc", "width": 3}
    assert load_model_entry(path, "other key", build, "toy", "test") is None  # stale: train again
    assert load_model_entry(tmp_path / "missing", "abc", build, "toy", "test") is None
    path.with_suffix(".json").write_text("{not json")
    assert load_model_entry(path, "abc", build, "toy", "test") is None
    assert "ignoring the unreadable cached toy" in capsys.readouterr().out
