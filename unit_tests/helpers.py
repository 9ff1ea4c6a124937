"""Small IR builders for hand-worked tests."""

from __future__ import annotations

from roofline.model import ir


def conv(name, src, in_shape, out_channels, k, stride=1, pad=None, groups=1, bias=False, dilation=1):
    n, c, h, w = in_shape
    pad = k // 2 if pad is None else pad
    oh = (h + 2 * pad - dilation * (k - 1) - 1) // stride + 1
    ow = (w + 2 * pad - dilation * (k - 1) - 1) // stride + 1
    return ir.Conv(
        name=name, inputs=(src,), output=name, input_shapes=(in_shape,),
        output_shape=(n, out_channels, oh, ow), kernel=(k, k), stride=(stride, stride),
        padding=(pad, pad), dilation=(dilation, dilation), groups=groups, bias=bias,
    )  # fmt: skip


def bn(name, src, shape):
    return ir.Norm(name=name, inputs=(src,), output=name, input_shapes=(shape,), output_shape=shape,
                   fn="batch", channels=shape[1])  # fmt: skip


def ew(name, fn, srcs, shapes, out_shape=None):
    return ir.Elementwise(name=name, inputs=tuple(srcs), output=name, input_shapes=tuple(shapes),
                          output_shape=out_shape or shapes[0], fn=fn)  # fmt: skip


def cli_error(capsys, argv) -> str:
    """Run the CLI on bad input, check the contract (exit 2, one line, no traceback), return stderr."""
    from roofline.cli.main import main

    try:
        code = main(argv)
    except SystemExit as exc:  # argparse errors exit from inside parse_args
        code = exc.code
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert err.startswith("roofline: error: ") and err.count("\n") == 1
    assert "Traceback" not in err
    return err


def network(layers, inputs, outputs=None):
    return ir.Network(name="test", inputs=tuple(inputs), outputs=tuple(outputs or (layers[-1].output,)),
                      layers=tuple(layers))  # fmt: skip


#: A small survey: compute- and memory-bound, dense, depthwise and grouped models, and their top-1 accuracies.
SURVEY_MODELS = ["resnet18", "resnet50", "efficientnet_b0", "mobilenetv2_100", "vgg16", "regnetx_002"]
SURVEY_TOP1 = {
    "resnet18": 69.76,
    "resnet50": 80.4,
    "efficientnet_b0": 77.7,
    "mobilenetv2_100": 72.97,
    "vgg16": 71.6,
}
