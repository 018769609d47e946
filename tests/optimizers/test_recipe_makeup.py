"""What each recipe is made of (``Recipe.family``, ``Recipe.components``): data that matches what is built."""

import pytest
import torch

import optimizers
from optimizers import transforms

# the transform class each chain component is built as
TRANSFORM_OF = {"adaclip": transforms.AdaClip, "adagn": transforms.AdaGN, "moret": transforms.MomentumReset,
                "spikeclip": transforms.SpikeClip, "gradclip": transforms.GlobalNormClip,
                "momentum_decay": transforms.CosineMomentumDecay}


def test_every_recipe_has_a_known_family_and_known_components():
    for name in optimizers.available():
        recipe = optimizers.get_recipe(name)
        assert recipe.family in optimizers.FAMILIES, name
        assert set(recipe.components) <= set(optimizers.COMPONENTS), name
        for component in recipe.components:
            assert set(optimizers.COMPONENTS[component][1]) <= set(recipe.defaults), (name, component)


@pytest.mark.parametrize("name", [n for n in optimizers.available()
                                  if optimizers.get_recipe(n).impl is optimizers.Chain])
def test_a_chain_recipes_components_are_the_transforms_it_builds_in_order(name):
    hparams = {"total_T": 10} if "total_T" in optimizers.get_recipe(name).defaults else {}
    built = optimizers.build(name, torch.nn.Linear(2, 3).named_parameters(), **hparams)
    assert [type(t) for t in built.transforms] == [TRANSFORM_OF[c] for c in optimizers.get_recipe(name).components]


def test_stable_spam_and_its_chain_are_made_of_the_same_parts():
    makeups = {(optimizers.get_recipe(n).family, optimizers.get_recipe(n).components)
               for n in ("stable_spam", "stable_spam_ref", "adam+moret+adagn+adaclip")}
    assert makeups == {("adam-like", ("momentum_decay", "adaclip", "adagn", "moret"))}


def test_families_and_components_of_the_rivals():
    makeup = {n: (optimizers.get_recipe(n).family, set(optimizers.get_recipe(n).components))
              for n in optimizers.available()}
    assert makeup["lion"] == ("sign-based", set()) and makeup["lion_stable"] == ("sign-based", {"adaclip", "adagn"})
    assert makeup["adafactor"] == ("factored", set())
    assert makeup["spam"] == ("adam-like", {"spikeclip", "spam_reset"})
    assert makeup["adam_clip"] == ("adam-like", {"gradclip"}) and makeup["adam"] == ("adam-like", set())
    assert makeup["adam_mini_stable"] == ("adam-like", {"adaclip", "adagn"})
