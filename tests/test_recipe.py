from importlib import resources

import pytest

from mmbench.builders.recipe import builtin_recipes, load_recipe
from mmbench.errors import MmbenchError


def test_builtin_recipes_and_their_order():
    assert builtin_recipes() == ["official", "paper", "sample"]
    official, paper = load_recipe("official"), load_recipe("paper")
    assert list(official.filters) == [
        "min_user_plays",
        "min_track_plays",
        "dedupe_session_repeats",
        "min_session_length",
        "max_session_length",
        "min_user_sessions",
    ]
    assert official.section("sessionize") == {"gap_seconds": 1200, "after_filters": []}
    assert paper.sessionize.after_filters == ["min_user_plays", "min_track_plays"]
    assert official.filters == paper.filters and official.section("split") == {
        "test_quantile": 0.9,
        "validation_quantile": 0.9,
        "select_before_test_cutoff": False,
    }


def test_overrides_keep_types_and_order(tmp_path):
    recipe = load_recipe(
        "official",
        [
            "filters.min_user_plays=500",
            "split.test_quantile=0.8",
            "split.validation_quantile=1e-1",
            "filters.dedupe_session_repeats=false",
            "name=mine",
        ],
    )
    assert recipe.filters["min_user_plays"] == 500 and recipe.split.test_quantile == 0.8
    assert recipe.filters["dedupe_session_repeats"] is False and recipe.name == "mine"
    assert list(recipe.filters)[0] == "min_user_plays"
    custom = tmp_path / "mine.toml"
    official = (resources.files("mmbench.builders") / "recipes" / "official.toml").read_text()
    custom.write_text(official.replace('name = "official"', 'name = "mine"'))
    assert load_recipe(str(custom), ["filters.min_track_plays=3"]).filters["min_track_plays"] == 3
    assert load_recipe(str(custom)).name == "mine"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("filters.min_user_plays=-1", "non-negative"),
        ("split.test_quantile=1.5", "split.test_quantile: Input should be less than 1, got 1.5"),
        ('sessionize.after_filters=["min_session_length"]', "after_filters"),
        ("filters.min_user_plays=true", "expects a int"),
        ("instances.seed.x=1", "unknown recipe key"),
        ("split.select_before_test_cutoff=1", "expects a bool"),
    ],
)
def test_invalid_values_are_refused(override, message):
    with pytest.raises(MmbenchError, match=message):
        load_recipe("official", [override])


def test_selection_before_the_test_cutoff_needs_every_filter_after_sessionizing():
    assert load_recipe("official", ["split.select_before_test_cutoff=true"]).split.select_before_test_cutoff
    with pytest.raises(MmbenchError, match="select_before_test_cutoff needs every filter"):
        load_recipe("paper", ["split.select_before_test_cutoff=true"])
