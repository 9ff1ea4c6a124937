"""GPU-marked: the runner's GPU must be in the roofline database.

The regression suite converts throughput to utilization with the database's
peak, so a runner whose GPU is missing there cannot be gated. Skips without a
GPU (see conftest.py).
"""

import pytest

from roofline import all_gpus

pytestmark = pytest.mark.gpu


def test_runner_gpu_is_in_the_database():
    import torch

    props = torch.cuda.get_device_properties(0)
    capability = f"{props.major}.{props.minor}"
    matches = [
        g.key
        for g in all_gpus()
        if g.sms == props.multi_processor_count and g.compute_capability == capability
    ]
    assert matches, (
        f"{props.name} (CC {capability}, {props.multi_processor_count} SMs) is not in roofline/data/gpus.toml"
    )
