from pathlib import Path

import pytest

from ssl_suite.config import load_config
from ssl_suite.errors import UserError

CONFIGS = sorted(p for p in Path("configs").rglob("*.yaml") if "compare" not in p.parts)
GRIDS = sorted(Path("configs/compare").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=str)
def test_shipped_configs_parse(path):
    load_config(path)


# attentions, seeds per objective (the grid's, or each objective's own), random-init floors
OBJECTIVES = ("simclr", "polyview", "byol", "mae", "ijepa")
GRID_SHAPES = {
    "fmnist_cpu": (2, {o: 3 for o in OBJECTIVES}, 2),
    "fmnist_budget": (1, {o: 3 for o in OBJECTIVES}, 2),
    "fmnist_long": (1, {"simclr": 5, "polyview": 1, "byol": 1, "mae": 1, "ijepa": 1}, 2),
    "imagenet_vit_s16": (2, {o: 1 for o in OBJECTIVES}, 2),
}


@pytest.mark.parametrize("path", GRIDS, ids=str)
def test_shipped_compare_grids_parse_with_every_cell_valid(path):
    from ssl_suite.compare import load_grid

    grid = load_grid(path)
    attentions, seeds, floors = GRID_SHAPES[path.stem]
    # the CPU grids run 3 seeds for their intervals (5 where 3 left a gap inside the noise)
    assert {r.objective for r in grid.runs} == set(seeds)
    assert {o: len({r.seed for r in grid.runs if r.objective == o}) for o in seeds} == seeds
    assert len(grid.runs) == attentions * sum(seeds.values())
    # one random-init floor per (model, attention): the Fashion-MNIST grids have /7 and /4 backbones
    assert [b.floor for b in grid.baselines] == ["raw pixels"] + ["random init"] * floors


def test_file_then_overrides_take_precedence(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("trainer:\n  max_epochs: 7\nmethod:\n  temperature: 0.3\n")
    cfg = load_config(f, ["method.temperature=0.5"])
    assert cfg.trainer.max_epochs == 7 and cfg.method.temperature == 0.5


@pytest.mark.parametrize(
    "override,match",
    [
        ("trainer.max_epoch=3", r"unknown config key 'trainer.max_epoch'; valid keys here: .*max_epochs"),
        ("modle.name=x", r"unknown config key 'modle'; valid keys here: .*model"),
        ("trainer.max_epochs=three", r"bad value for 'trainer.max_epochs'"),
        ("model.attention=relu", r"model.attention='relu': expected one of sigmoid, softmax"),
        ("data.batch_size=0", r"data.batch_size must be positive"),
        ("data.num_views=1", r"method.name=simclr takes 2 view\(s\) per image, got data.num_views=1"),
        ("method.mask_ratio=1.0", r"method.mask_ratio must lie in \(0, 1\), got 1.0"),
        ("method.mask_ratio=0", r"method.mask_ratio must lie in \(0, 1\)"),
        ("method.target_scale=[0.3,0.1]", r"method.target_scale must be \[low, high\]"),
        ("trainer.max_epochs", r"not of the form key=value"),
    ],
)
def test_bad_overrides_are_one_line_errors(override, match):
    with pytest.raises(UserError, match=match) as err:
        load_config(None, [override])
    assert "\n" not in str(err.value)


def test_missing_config_file():
    with pytest.raises(UserError, match="config file not found"):
        load_config("configs/nope.yaml")
