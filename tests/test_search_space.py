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


def test_hybrid_space_is_one_slot_per_teacher_layer_seeded_by_survey_baselines():
    from hybridsearch.search.freeze import FreezeBase

    space = load_space("hybrid")
    assert space.max_depth == 6 and "depth" not in space.labels()  # every slot's block is asked in every trial
    seeds = {s["name"]: s["sample"] for s in space.seeds}
    assert set(seeds) == {"dq8", "kd-eo", "sp-layers"}
    base = FreezeBase(vocab_size=1000, num_labels=2, teacher_layers=6)
    arch, recipe = space.freeze(seeds["dq8"], base)
    assert [(layer.heads, layer.weight_bits, layer.act_bits) for layer in arch.layers] == [(12, 8, 8)] * 6
    assert recipe.transfer and recipe.transfer_limit == 4000 and recipe.layer_map == "uniform"
    arch, recipe = space.freeze(seeds["kd-eo"], base)
    assert [layer.block for layer in arch.layers] == ["skip", "transformer"] * 3
    assert recipe.losses == ["kd_ol", "kd_eo"] and recipe.layer_map == [-1, 2, -1, 4, -1, 6]


FIXED_DEPTH = """
depth: 6
arch: {hidden: 384, act_bits: 8, weight_bits: [32, 8]}
layer:
  block: [transformer, skip]
  heads: {value: 12, when: {block: transformer}}
  head_size: {value: 32, when: {block: transformer}}
  ffn: {value: 1536, when: {block: transformer}}
recipe: {losses: kd_ol+kd_eo, steps: 100, eval_every: 50, steps_scale: 3}
"""


def _fixed_depth_sample(blocks, bits=8):
    sample = {"arch.weight_bits": bits}
    sample.update({f"layer_{i}.block": b for i, b in enumerate(blocks)})
    return sample


def test_skip_layers_get_no_kd_eo_pair_and_the_others_their_init_layer():
    from hybridsearch.distill.recipe import resolve_layer_map
    from hybridsearch.search.freeze import FreezeBase

    space = parse_space(yaml.safe_load(FIXED_DEPTH), "fixed.yaml")
    blocks = ["skip", "transformer", "skip", "transformer", "skip", "transformer"]
    arch, recipe = space.freeze(_fixed_depth_sample(blocks), FreezeBase(vocab_size=1000, teacher_layers=6))
    assert recipe.layer_map == [-1, 2, -1, 4, -1, 6]
    assert resolve_layer_map(recipe.layer_map, 6, 6) == [(2, 2), (4, 4), (6, 6)]
    assert [layer.weight_bits for layer in arch.layers if layer.block != "skip"] == [8, 8, 8]  # arch-wide bits
    _, plain = space.freeze(_fixed_depth_sample(["transformer"] * 6, bits=32), FreezeBase(vocab_size=1000))
    assert plain.layer_map == "uniform"


def test_steps_scale_gives_cheaper_students_more_steps_up_to_the_cap():
    from hybridsearch.measure.flops import model_flops
    from hybridsearch.search.freeze import FreezeBase

    space = parse_space(yaml.safe_load(FIXED_DEPTH), "fixed.yaml")
    full, _ = space.freeze(_fixed_depth_sample(["transformer"] * 6), FreezeBase(vocab_size=1000))
    base = FreezeBase(vocab_size=1000, teacher_layers=6, teacher_flops=model_flops(full, 64, 1))
    steps = {}
    for kept in (6, 3, 1):
        blocks = ["transformer"] * kept + ["skip"] * (6 - kept)
        _, recipe = space.freeze(_fixed_depth_sample(blocks), base)
        steps[kept] = (recipe.steps, recipe.eval_every)
    assert steps[6] == (100, 50)  # the teacher's cost: the space's budget
    assert 180 <= steps[3][0] <= 200 and steps[3][1] == round(50 * steps[3][0] / 100)  # about 2x
    assert steps[1] == (300, 150)  # capped at steps_scale
    _, override = space.freeze(_fixed_depth_sample(["transformer"] * 3 + ["skip"] * 3), base, steps=10)
    assert 18 <= override.steps <= 20  # --steps replaces the base budget; the scaling still applies
    _, unscaled = space.freeze(_fixed_depth_sample(["transformer"] + ["skip"] * 5), FreezeBase(vocab_size=1000))
    assert unscaled.steps == 100  # no teacher cost known: no scaling


def test_steps_power_gives_students_far_from_the_teacher_a_longer_budget():
    from hybridsearch.measure.flops import model_flops
    from hybridsearch.search.freeze import FreezeBase

    text = FIXED_DEPTH.replace("steps_scale: 3}", "steps_scale: 9, steps_power: 2}")
    space = parse_space(yaml.safe_load(text), "fixed.yaml")
    full, _ = space.freeze(_fixed_depth_sample(["transformer"] * 6), FreezeBase(vocab_size=1000))
    base = FreezeBase(vocab_size=1000, teacher_layers=6, teacher_flops=model_flops(full, 64, 1))
    half, _ = space.freeze(_fixed_depth_sample(["transformer"] * 3 + ["skip"] * 3), FreezeBase(vocab_size=1000))
    k = base.teacher_flops / model_flops(half, 64, 1)
    _, recipe = space.freeze(_fixed_depth_sample(["transformer"] * 3 + ["skip"] * 3), base)
    assert recipe.steps == round(100 * k * k) and 1.8 < k < 2.2
