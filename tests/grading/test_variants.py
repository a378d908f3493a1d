"""Variants: seeds from the course secret, deterministic draws, placeholder rendering."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest

from grading.variants import (
    ParameterSpec,
    VariantError,
    VariantSpec,
    draw_variant,
    render_brief,
    render_title,
    render_value,
    variant_seed,
)

SPEC: dict[str, Any] = {
    "parameters": {
        "setpoint": {"float": [0.6, 1.4, 0.1]},
        "unit_id": {"int": [1, 5]},
        "site": {"choice": ["lyon", "porto", "gdansk"]},
    }
}


# --- variant_seed ------------------------------------------------------------------------


def test_seed_is_hmac_sha256_of_the_json_pair_truncated_to_53_bits() -> None:
    digest = hmac.new(b"s3cret", b'["ann", "modbus-read"]', hashlib.sha256).digest()
    expected = int.from_bytes(digest[:8], "big") >> 11
    assert variant_seed("s3cret", "ann", "modbus-read") == expected


def test_seed_is_pinned_so_a_change_of_algorithm_cannot_slip_through() -> None:
    # A golden value: the same on every run and machine (no hash randomization).
    assert variant_seed("s3cret", "ann", "modbus-read") == 3437790924546525
    assert variant_seed("s3cret", "ann", "modbus-read") < 2**53


def test_seed_depends_on_secret_apprentice_and_exercise() -> None:
    base = variant_seed("s3cret", "ann", "ex1")
    assert variant_seed("other", "ann", "ex1") != base
    assert variant_seed("s3cret", "bob", "ex1") != base
    assert variant_seed("s3cret", "ann", "ex2") != base
    # Shifting characters between the two ids must not give the same message.
    assert variant_seed("s3cret", "ab", "c") != variant_seed("s3cret", "a", "bc")


def test_seed_needs_a_secret() -> None:
    with pytest.raises(VariantError, match="course secret is empty"):
        variant_seed("", "ann", "ex1")


# --- draw_variant ------------------------------------------------------------------------


def test_draw_is_deterministic_and_pinned() -> None:
    first = draw_variant(SPEC, 12345)
    assert first == draw_variant(VariantSpec.model_validate(SPEC), 12345)
    assert first == {"setpoint": 1.2, "site": "gdansk", "unit_id": 1}


def test_draw_does_not_depend_on_the_order_parameters_are_written() -> None:
    reordered = {"parameters": dict(reversed(list(SPEC["parameters"].items())))}
    for seed in range(20):
        assert draw_variant(reordered, seed) == draw_variant(SPEC, seed)


def test_draws_stay_in_range_and_cover_every_value() -> None:
    grid = {0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4}  # exact decimals, hi included
    setpoints, units, sites = set(), set(), set()
    for seed in range(400):
        drawn = draw_variant(SPEC, seed)
        setpoints.add(drawn["setpoint"])
        units.add(drawn["unit_id"])
        sites.add(drawn["site"])
    assert setpoints == grid
    assert units == {1, 2, 3, 4, 5}
    assert sites == {"lyon", "porto", "gdansk"}


def test_degenerate_ranges_give_their_only_value() -> None:
    spec = {
        "parameters": {
            "a": {"int": [7, 7]},
            "b": {"float": [2.5, 2.5, 0.5]},
            "c": {"choice": [True]},
        }
    }
    assert draw_variant(spec, 99) == {"a": 7, "b": 2.5, "c": True}


def test_empty_spec_draws_nothing() -> None:
    assert draw_variant(VariantSpec(), 1) == {}


@pytest.mark.parametrize(
    ("parameter", "message"),
    [
        ({"int": [5, 1]}, "parameters.p.int: int range must be [lo, hi] with lo <= hi"),
        ({"float": [0.0, 1.0, 0.0]}, "parameters.p.float: float step must be > 0"),
        ({"float": [2.0, 1.0, 0.1]}, "with lo <= hi"),
        ({"choice": []}, "parameters.p.choice: List should have at least 1 item"),
        ({}, "give exactly one of choice, int, float (got none)"),
        ({"choice": [1], "int": [1, 2]}, "(got choice and int)"),
        ({"range": [1, 2]}, "parameters.p.range: Extra inputs are not permitted"),
    ],
)
def test_bad_parameter_specs_are_named(parameter: dict[str, Any], message: str) -> None:
    with pytest.raises(VariantError) as caught:
        draw_variant({"parameters": {"p": parameter}}, 1)
    assert message in str(caught.value)


def test_parameter_names_must_be_usable_as_placeholders() -> None:
    with pytest.raises(VariantError, match="'set-point' cannot be used"):
        draw_variant({"parameters": {"set-point": {"int": [1, 2]}}}, 1)


def test_parameter_spec_fields_are_the_yaml_keys() -> None:
    spec = ParameterSpec.model_validate({"int": [1, 3]})
    assert spec.int == (1, 3)
    assert spec.choice is None
    assert spec.float is None


# --- render_brief / render_value ---------------------------------------------------------


def test_placeholders_take_values_with_or_without_spaces() -> None:
    text = "Unit {{ unit_id }}, site {{site}}, setpoint {{  setpoint  }} m."
    variant = {"unit_id": 3, "site": "porto", "setpoint": 1.2}
    assert render_brief(text, variant) == "Unit 3, site porto, setpoint 1.2 m."


def test_escaped_braces_stay_literal() -> None:
    text = "Node-RED writes \\{{payload}} and \\{{ msg.topic }}; you are {{ site }}."
    assert render_brief(text, {"site": "lyon"}) == (
        "Node-RED writes {{payload}} and {{ msg.topic }}; you are lyon."
    )


def test_unknown_placeholder_names_itself_the_line_and_the_known_names() -> None:
    text = "# Brief\n\nRead unit {{ unit_id }}.\nThen {{ setpiont }}.\n"
    with pytest.raises(VariantError) as caught:
        render_brief(text, {"unit_id": 1, "setpoint": 1.0}, "ex/README.md")
    err = caught.value
    assert err.line == 4
    assert err.source == "ex/README.md"
    assert str(err).startswith("ex/README.md:4: unknown variant parameter 'setpiont'")
    assert "this exercise's parameters: setpoint, unit_id" in str(err)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a {{ 1 + 2 }} b", "'{{ 1 + 2 }}' is not a placeholder"),
        ("a {{ unit_id } b", "'{{' without a closing '}}'"),
        ("a {{ unit.id }}", "is not a placeholder"),
    ],
)
def test_malformed_placeholders_are_errors(text: str, message: str) -> None:
    with pytest.raises(VariantError) as caught:
        render_brief(text, {"unit_id": 1})
    assert message in str(caught.value)


def test_text_without_placeholders_is_unchanged() -> None:
    text = "No braces { here } at all, not even }} this."
    assert render_brief(text, {}) == text


def test_render_value_keeps_types_of_whole_placeholders() -> None:
    variant = {"setpoint": 1.2, "unit_id": 3, "site": "lyon"}
    data = {
        "initial": "{{ setpoint }}",
        "unit": " {{unit_id}} ",
        "topic": "{{ site }}/tank/level",
        "list": ["{{ unit_id }}", 4, None],
        "nested": {"flag": True},
    }
    assert render_value(data, variant) == {
        "initial": 1.2,
        "unit": 3,
        "topic": "lyon/tank/level",
        "list": [3, 4, None],
        "nested": {"flag": True},
    }


def test_render_value_errors_name_the_data_path() -> None:
    with pytest.raises(VariantError) as caught:
        render_value({"a": [{"b": "x {{ nope }}"}]}, {}, "ex.yaml", "params")
    assert str(caught.value).startswith("ex.yaml: params.a[0].b: unknown variant parameter")
    assert caught.value.line is None


def test_render_title_fills_the_variant_and_never_fails() -> None:
    variant = {"setpoint": 1.25, "unit_id": 3}
    assert render_title("Level held at {{ setpoint }} m", variant) == "Level held at 1.25 m"
    assert render_title("Unit {{unit_id}}, not \\{{ payload }}", variant) == (
        "Unit 3, not {{ payload }}"
    )
    assert render_title("Level held at {{ setpont }} m", variant) == (
        "Level held at {{ setpont }} m"  # the author's typo: as written (the linter says so)
    )
    assert render_title("Plain title", {}) == "Plain title"
