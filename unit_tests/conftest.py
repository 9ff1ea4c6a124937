"""Fixtures shared across the unit-test packages."""

import pytest

from roofline import Target
from roofline.model import zoo
from roofline.studies.survey import survey
from unit_tests.helpers import SURVEY_MODELS, SURVEY_TOP1


@pytest.fixture(scope="session")
def survey_result():
    """The small survey on a V100 at FP16, batch 256, folding by 4 (studies and the CLI's output files)."""
    return survey([zoo.load(m) for m in SURVEY_MODELS], Target.of("v100"), 256, fold_factor=4)


@pytest.fixture(scope="session")
def survey_with_top1():
    """The same survey with top-1 accuracies for all but one model."""
    return survey(
        [zoo.load(m) for m in SURVEY_MODELS], Target.of("v100"), 256, fold_factor=4, accuracies=SURVEY_TOP1
    )
