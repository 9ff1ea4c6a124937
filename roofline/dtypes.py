"""The datatypes the roofline evaluates, and their size in memory.

Both halves of the GPU model need this: the IR counts elements, the hardware
database keys its peaks by datatype, and bytes = elements x DTYPE_BYTES.
"""

#: Bytes per element of each datatype the roofline evaluates. TF32 is stored as
#: FP32 in memory; only the tensor-core math is narrower.
DTYPE_BYTES = {"fp32": 4, "tf32": 4, "fp16": 2, "bf16": 2, "int8": 1, "fp8": 1}
