"""gin/studies/*.gin: each parses, every cell composes into a train config, and each study
covers every registered method (a new method joins the study, or this fails)."""

import os

import gin
import pytest

from hyperprompt import cli
from hyperprompt.methods.base import conditioner_of, registered
from hyperprompt.runs import network_of
from hyperprompt.study.spec import Study

STUDIES = sorted(f"studies/{name}" for name in os.listdir(os.path.join(cli.gin_root(), "studies")))


def study_of(path: str) -> Study:
    cli.parse_gin([path], [], [])
    try:
        return gin.query_parameter("STUDY/macro.value").scoped_configurable_fn()
    finally:
        gin.clear_config()


@pytest.mark.parametrize("path", STUDIES)
def test_every_cell_composes_into_the_method_it_names(path):
    study = study_of(path)
    methods = registered()
    assert set(methods) <= set(study.methods), "add the new method to " + path
    for cell in study.cells("runs/x"):
        if cell.seed not in (None, study.seeds[0]):  # other seeds differ only in SEED
            continue
        conditioner = conditioner_of(network_of(cell.gin_files, cell.bindings))
        if cell.method is None:  # a stage: it composes
            continue
        entry = methods[cell.method]
        assert type(conditioner) is entry.cls, cell.name
        for field, value in entry.settings.items():
            assert getattr(conditioner, field) == value, cell.name
