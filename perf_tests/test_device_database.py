"""GPU-marked: the runner's GPU must be in the roofline database.

The regression suite converts throughput to utilization with the database's
peak and names its baseline file after the database key, so a runner whose
GPU is missing there cannot be gated. Skips without a GPU (see conftest.py).
"""

import pytest

from roofline.hardware.gpus import match_device

pytestmark = pytest.mark.gpu


def test_runner_gpu_is_in_the_database():
    import torch

    props = torch.cuda.get_device_properties(0)
    cc = f"{props.major}.{props.minor}"
    gpu = match_device(props.name, cc, props.multi_processor_count, props.total_memory)
    assert gpu.memory_bytes == pytest.approx(props.total_memory, rel=0.1), (
        f"{props.name} matched {gpu.key}, whose memory differs: "
        "add the right SKU to roofline/hardware/data/gpus.toml"
    )
