"""Default efficiency factors: the gap between datasheet and achievable rates.

The prediction aims at what a well-optimized engine (TensorRT FP16 at large
batch) achieves. Each factor below has a physical reason and a published
measurement; none is fitted to a model. A calibration file measured on the
actual GPU replaces the first two (``roofline.hardware.calibration.achievable_roof``).
"""

#: Best large dense GEMM / datasheet tensor peak. Published FP16/BF16 GEMM
#: rates reach 80-87% of the dense peak (V100 100 of 125 TFLOP/s in the
#: utilization study; A100 256-271 of 312; H100 790-795 of 989:
#: shared/reference/gpu-specs.md). Clocks drop below boost under sustained
#: tensor-core load, which is most of the gap. We take the low end, 0.80,
#: because convolutions run as implicit GEMMs, which do no better than a
#: plain GEMM.
COMPUTE = 0.80

#: Sustained DRAM bandwidth / datasheet bandwidth. STREAM-like triad reaches
#: 83-92% of the datasheet figure and pure read or write streams 95-99%
#: (te42kyfo/gpu-benches, shared/reference/gpu-specs.md). A CNN kernel mixes
#: reads and writes like a triad, so we take 0.85 from that range.
BANDWIDTH = 0.85

#: Fixed cost of each launched kernel, in seconds. Inside a CUDA graph the
#: launch gap between dependent kernels is ~1-2 us, and each kernel also
#: pays a ramp-up and drain before all SMs are busy (NVIDIA, "Getting Started
#: with CUDA Graphs", 2019: ~2 us per short kernel with graphs). We charge
#: 2 us, so tiny layers are not predicted as free and batch-1 latency is not
#: underestimated by the number of kernels it launches.
KERNEL_OVERHEAD_S = 2e-6
