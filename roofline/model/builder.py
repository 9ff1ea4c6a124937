"""Build IR networks in plain Python, without torch: the search spaces' definitions.

Each method appends one layer with the shapes that PyTorch's ``nn.Conv2d``,
``nn.BatchNorm2d`` ... would produce (output size per ``torch.nn.Conv2d``'s
documentation: floor((H + 2 pad - dilation (k - 1) - 1) / stride) + 1) and
returns the name of its output tensor. Names follow the module scope given by
``scope``, like a traced model's, so reports stay readable.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from roofline.model.ir import Conv, Elementwise, Layer, Linear, Network, Norm, Pool, Shape


class NetBuilder:
    """Appends layers in execution order; ``network()`` freezes them."""

    def __init__(self, name: str, input_shape: Shape, source: str = "") -> None:
        self.name, self.source = name, source
        self.input = "input"
        self._inputs = ((self.input, tuple(input_shape)),)
        self._shapes: dict[str, Shape] = {self.input: tuple(input_shape)}
        self._layers: list[Layer] = []
        self._scope: list[str] = []

    def shape(self, tensor: str) -> Shape:
        return self._shapes[tensor]

    def channels(self, tensor: str) -> int:
        return self._shapes[tensor][1]

    @contextmanager
    def scope(self, name: str) -> Iterator[None]:
        self._scope.append(name)
        try:
            yield
        finally:
            self._scope.pop()

    def _add(self, cls: type[Layer], label: str, inputs: tuple[str, ...], out: Shape, in_shapes=None, **kw):
        base = ".".join([*self._scope, label])
        name, i = base, 1
        while name in self._shapes:
            i += 1
            name = f"{base}_{i}"
        shapes = in_shapes or tuple(self._shapes[t] for t in inputs)
        self._layers.append(
            cls(name=name, inputs=inputs, output=name, input_shapes=shapes, output_shape=out, **kw)
        )
        self._shapes[name] = out
        return name

    def conv(
        self, x: str, out_channels: int, kernel: int, stride: int = 1, groups: int = 1, bias: bool = False,
        padding: int | None = None,
    ) -> str:  # fmt: skip
        """A 2-d convolution; ``padding`` defaults to "same" (kernel // 2)."""
        n, _, h, w = self._shapes[x]
        pad = kernel // 2 if padding is None else padding
        oh, ow = ((d + 2 * pad - (kernel - 1) - 1) // stride + 1 for d in (h, w))
        return self._add(
            Conv, "conv", (x,), (n, out_channels, oh, ow), kernel=(kernel, kernel), stride=(stride, stride),
            padding=(pad, pad), dilation=(1, 1), groups=groups, bias=bias,
        )  # fmt: skip

    def bn(self, x: str) -> str:
        return self._add(Norm, "bn", (x,), self._shapes[x], fn="batch", channels=self.channels(x))

    def act(self, x: str, fn: str) -> str:
        return self._add(Elementwise, fn, (x,), self._shapes[x], fn=fn)

    def add(self, a: str, b: str) -> str:
        return self._add(Elementwise, "add", (a, b), self._shapes[a], fn="add")

    def mul(self, a: str, b: str) -> str:
        """``a * b`` with ``b`` broadcast (an SE gate of shape (N, C, 1, 1))."""
        return self._add(Elementwise, "mul", (a, b), self._shapes[a], fn="mul")

    def pool(self, x: str, mode: str, kernel: int, stride: int) -> str:
        n, c, h, w = self._shapes[x]
        out = (n, c, (h - kernel) // stride + 1, (w - kernel) // stride + 1)
        window = {"kernel": (kernel, kernel), "stride": (stride, stride)}
        return self._add(Pool, f"{mode}pool", (x,), out, mode=mode, **window)

    def global_pool(self, x: str, mode: str = "avg") -> str:
        n, c, h, w = self._shapes[x]
        window = {"kernel": (h, w), "stride": (h, w)}
        return self._add(Pool, "pool", (x,), (n, c, 1, 1), mode=mode, kind="global", **window)

    def linear(self, x: str, out_features: int, bias: bool = True) -> str:
        """A classifier on a pooled (N, C, 1, 1) tensor, read flattened as (N, C)."""
        n, c = self._shapes[x][:2]
        return self._add(Linear, "fc", (x,), (n, out_features), in_shapes=((n, c),), bias=bias)

    def network(self, resolution: int | None = None, outputs: tuple[str, ...] = ()) -> Network:
        return Network(
            name=self.name,
            inputs=self._inputs,
            outputs=outputs or (self._layers[-1].output,),
            layers=tuple(self._layers),
            resolution=resolution,
            source=self.source,
        )
