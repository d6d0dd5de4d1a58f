"""The linear probe decodes linear labels, stays at chance on random ones; joint date scoring."""

from __future__ import annotations

import pytest
import torch

from transferlab.evaluate.probe import LinearProbe, fit_linear_probe
from transferlab.evaluate.qa_probe import join_parts, joint_prediction, value_parts, value_row
from transferlab.worlds.bios import QAItem

CLASSES = ["north", "east", "south", "west"]


def _accuracy(probe: LinearProbe, features: torch.Tensor, labels: list[str]) -> float:
    predicted = probe.probabilities(features).argmax(-1).tolist()
    return sum(probe.classes[k] == label for k, label in zip(predicted, labels, strict=True)) / len(
        labels
    )


def _linear_data(n: int, generator: torch.Generator) -> tuple[torch.Tensor, list[str]]:
    # Scaled, shifted features: standardization has to undo both.
    x = torch.randn(n, 8, generator=generator) * 5.0 + 3.0
    true_weight = torch.randn(8, len(CLASSES), generator=torch.Generator().manual_seed(99))
    labels = [CLASSES[k] for k in ((x - 3.0) @ true_weight).argmax(-1).tolist()]
    return x, labels


def test_linearly_decodable_labels_are_learned() -> None:
    generator = torch.Generator().manual_seed(0)
    x_train, y_train = _linear_data(2000, generator)
    x_test, y_test = _linear_data(500, generator)
    probe = fit_linear_probe(x_train, y_train, l2=1e-4)
    assert probe.classes == sorted(CLASSES)
    assert _accuracy(probe, x_test, y_test) >= 0.95


def test_random_labels_stay_near_chance() -> None:
    generator = torch.Generator().manual_seed(1)
    x_train = torch.randn(400, 12, generator=generator)
    x_test = torch.randn(2000, 12, generator=generator)
    draw = torch.randint(0, 4, (2400,), generator=generator).tolist()
    labels = [CLASSES[k] for k in draw]
    probe = fit_linear_probe(x_train, labels[:400])
    assert abs(_accuracy(probe, x_test, labels[400:]) - 0.25) < 0.05


def test_fit_is_deterministic_and_probabilities_normalized() -> None:
    generator = torch.Generator().manual_seed(2)
    x, y = _linear_data(100, generator)
    a, b = fit_linear_probe(x, y), fit_linear_probe(x, y)
    assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)
    assert a.probabilities(x).sum(-1) == pytest.approx(torch.ones(100, dtype=torch.float64))


def test_l2_shrinks_the_weights() -> None:
    x, y = _linear_data(100, torch.Generator().manual_seed(3))
    loose, tight = fit_linear_probe(x, y, l2=1e-4), fit_linear_probe(x, y, l2=10.0)
    assert tight.weight.norm() < 0.2 * loose.weight.norm()


def test_constant_features_and_a_single_class_are_fine() -> None:
    x = torch.ones(5, 3)
    probe = fit_linear_probe(x, ["a"] * 5)
    assert probe.classes == ["a"]
    assert probe.probabilities(x).flatten().tolist() == [1.0] * 5


def test_mismatched_inputs_fail_clearly() -> None:
    with pytest.raises(ValueError, match="one label per row"):
        fit_linear_probe(torch.zeros(3, 2), ["a", "b"])


def test_joint_prediction_of_independent_parts() -> None:
    probes = [["a", "b"], ["x", "y", "z"]]
    probs = [torch.tensor([0.7, 0.3]), torch.tensor([0.5, 0.3, 0.2])]
    parts, p_gold, margin = joint_prediction(probes, probs, ("a", "x"))
    assert parts == ("a", "x")
    assert p_gold == pytest.approx(0.35)
    # Best other value changes one part: max(0.3 * 0.5, 0.7 * 0.3) = 0.21.
    assert margin == pytest.approx(0.35 - 0.21)
    parts, p_gold, margin = joint_prediction(probes, probs, ("b", "y"))
    assert parts == ("a", "x")
    assert (p_gold, margin) == pytest.approx((0.09, 0.09 - 0.35))
    _, p_gold, margin = joint_prediction(probes, probs, ("c", "x"))  # "c" never seen in training
    assert (p_gold, margin) == pytest.approx((0.0, -0.35))


def _date_item(answer: str) -> QAItem:
    return QAItem("q0", 0, "birth_date", "When was A born?", answer, "test", 0)


def test_a_rows_p_part_is_the_mean_of_its_gold_parts_probabilities() -> None:
    classes = [["March", "May"], ["4", "5"], ["1983", "1990"]]
    probs = [torch.tensor([0.9, 0.1]), torch.tensor([0.6, 0.4]), torch.tensor([0.5, 0.5])]
    row = value_row(_date_item("March 5, 1983"), classes, probs, "run", "qa_probe")
    assert row["prediction"] == "March 4, 1983"
    assert row["p_correct"] == pytest.approx(0.9 * 0.4 * 0.5)
    assert row["p_part"] == pytest.approx((0.9 + 0.4 + 0.5) / 3)
    # A part never seen in training counts 0 in the mean (and makes the joint 0).
    row = value_row(_date_item("March 4, 1901"), classes, probs, "run", "qa_probe")
    assert (row["p_correct"], row["p_part"]) == pytest.approx((0, 0.5))
    # A one-part value: p_part is p_correct.
    item = QAItem("q1", 0, "major", "What did A study?", "Law", "test", 0)
    row = value_row(item, [["Art", "Law"]], [torch.tensor([0.3, 0.7])], "run", "qa_probe")
    assert row["p_part"] == row["p_correct"] == pytest.approx(0.7)


def test_date_parts_round_trip() -> None:
    assert value_parts("birth_date", "March 4, 1983") == ("March", "4", "1983")
    assert join_parts("birth_date", ("March", "4", "1983")) == "March 4, 1983"
    assert value_parts("birth_city", "Quebec City") == ("Quebec City",)
    assert join_parts("birth_city", ("Quebec City",)) == "Quebec City"
