"""Search-space files: parsing, conditional sampling, freeze, and one-line errors naming file and key."""

from __future__ import annotations

import pytest
import yaml

from hybridsearch.errors import UserError
from hybridsearch.search.space import list_spaces, load_space, parse_space
from hybridsearch.search.toy import TOY_SPACE


def toy():
    return parse_space(yaml.safe_load(TOY_SPACE), "toy.yaml")


def test_conditional_labels_are_asked_only_when_active():
    space = toy()
    for seed in range(30):
        sample = space.random_sample(seed)
        depth = sample["depth"]
        assert not any(k.startswith(f"layer_{depth}.") for k in sample)
        for i in range(depth):
            block = sample[f"layer_{i}.block"]
            assert (f"layer_{i}.heads" in sample) == (block == "transformer")
            assert (f"layer_{i}.kernel" in sample) == (block == "cnn")
        assert space.resolve(sample)["depth"] == depth


def test_cheapest_sample_and_hash_ignores_comments():
    space = toy()
    assert space.cheapest_sample() == {"depth": 1, "layer_0.block": "cnn", "layer_0.kernel": 3, "recipe.temperature": 1.0}
    again = parse_space(yaml.safe_load("# a comment\n" + TOY_SPACE), "other.yaml")
    assert again.hash == space.hash
    changed = parse_space(yaml.safe_load(TOY_SPACE.replace("[1, 2, 3]", "[1, 2]")), "toy.yaml")
    assert changed.hash != space.hash


def test_resolve_rejects_inactive_and_missing_labels():
    space = toy()
    with pytest.raises(UserError, match="layer_0.heads"):
        space.resolve({"depth": 1, "layer_0.block": "cnn", "layer_0.kernel": 3, "layer_0.heads": 2,
                       "recipe.temperature": 1.0})
    with pytest.raises(UserError, match="layer_0.kernel' is missing"):
        space.resolve({"depth": 1, "layer_0.block": "cnn", "recipe.temperature": 1.0})
    with pytest.raises(UserError, match="not in the space"):
        space.resolve({"depth": 1, "layer_0.block": "cnn", "layer_0.kernel": 7, "recipe.temperature": 1.0})


@pytest.mark.parametrize(
    "text, expected",
    [
        ("layer: {block: [cnn]}\nbogus: 1", "unknown key 'bogus'"),
        ("layer: {block: [cnn], hedas: [2]}", "unknown key 'layer.hedas'"),
        ("layer: {block: []}", "key 'layer.block': empty choices"),
        ("layer: {block: [cnn], kernel: [3, x]}", "'x' is not a int"),
        ("layer: {block: [cnn, rnn]}", "unknown value 'rnn'"),
        ("depth: [1, 2.5]\nlayer: {block: [cnn]}", "key 'depth'"),
        ("layer: {block: [cnn], heads: {choices: [2], when: {kernel: [3]}}}", "'when' refers to 'kernel'"),
        ("layer: {block: [cnn]}\nrecipe: {losses: [kd_ol+kd_xx]}", "unknown loss 'kd_xx'"),
        ("layer: {block: [cnn]}\nseeds: [{name: s, sample: {depth: 1, layer_9.block: cnn}}]", "seeds[0]"),
        ("depth: [1]", "key 'layer' is missing"),
    ],
)
def test_bad_space_files_name_file_key_and_fix(tmp_path, text, expected):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(UserError) as info:
        load_space(str(path))
    msg = str(info.value)
    assert str(path) in msg and expected in msg and ";" in msg and "\n" not in msg


def test_invalid_yaml_syntax(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("layer: {block: [cnn\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_space(str(path))


def test_unknown_space_name():
    with pytest.raises(UserError, match="unknown search space 'nope'"):
        load_space("nope")


@pytest.mark.parametrize("name", ["hybrid", "transformer_only", "survey_baselines"])
def test_shipped_spaces_freeze_to_valid_students(name):
    from hybridsearch.search.freeze import FreezeBase

    assert name in list_spaces()
    space = load_space(name)
    base = FreezeBase(vocab_size=1000, num_labels=2, task_tokens=list(range(0, 1000, 3)))
    samples = [s["sample"] for s in space.seeds] + [space.random_sample(i) for i in range(20)]
    for sample in samples:
        arch, recipe = space.freeze(sample, base)
        if any(layer.block != "skip" for layer in arch.layers):
            arch.validate(is_pair=False)
        recipe.validate(student_layers=len(arch.layers), teacher_layers=6,
                        has_attention=any(layer.block == "transformer" for layer in arch.layers))
        assert len(arch.layers) == space.resolve(sample)["depth"]
    if name == "survey_baselines":
        assert len(space.seeds) >= 5


def test_hybrid_space_reaches_teacher_depth_with_a_fixed_transfer_subset():
    from hybridsearch.search.freeze import FreezeBase

    space = load_space("hybrid")
    assert space.max_depth == 6  # depth 6: student layer i starts from teacher layer i, `skip` drops it
    seed = next(s["sample"] for s in space.seeds if s["name"] == "six-layer-half-int8")
    arch, recipe = space.freeze(seed, FreezeBase(vocab_size=1000, num_labels=2))
    assert [layer.heads for layer in arch.layers] == [6] * 6 and arch.layers[0].act_bits == 8
    assert recipe.transfer and recipe.transfer_limit == 4000 and recipe.steps == 150
