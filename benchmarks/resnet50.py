"""Writes ``benchmarks/ResNet-50-deploy.prototxt``: the structure of the BVLC-style ResNet-50
deploy net (He et al., 2015, as published with Caffe): 7x7 convolution, four stages of
bottleneck blocks (3, 4, 6, 3) with a projection shortcut in each stage's first block, every
convolution without bias and followed by BatchNorm (global statistics) and Scale (with bias),
ReLU after the sums, 7x7 average pooling, fc1000 and Softmax.

    python -m benchmarks.resnet50
"""

from __future__ import annotations

import pathlib

PATH = pathlib.Path(__file__).resolve().parent / "ResNet-50-deploy.prototxt"


def _conv(name: str, bottom: str, outputs: int, kernel: int, stride: int, pad: int) -> str:
    return (f'layer {{ name: "{name}" type: "Convolution" bottom: "{bottom}" top: "{name}"\n'
            f'  convolution_param {{ num_output: {outputs} kernel_size: {kernel} pad: {pad} '
            f'stride: {stride} bias_term: false }} }}\n'
            f'layer {{ name: "bn{name[3:] if name.startswith("res") else "_" + name}" type: "BatchNorm" '
            f'bottom: "{name}" top: "{name}" batch_norm_param {{ use_global_stats: true }} }}\n'
            f'layer {{ name: "scale{name[3:] if name.startswith("res") else "_" + name}" type: "Scale" '
            f'bottom: "{name}" top: "{name}" scale_param {{ bias_term: true }} }}\n')


def _relu(name: str, blob: str) -> str:
    return f'layer {{ name: "{name}" type: "ReLU" bottom: "{blob}" top: "{blob}" }}\n'


def prototxt() -> str:
    text = ('name: "ResNet-50"\n'
            'layer { name: "data" type: "Input" top: "data" '
            'input_param { shape { dim: 1 dim: 3 dim: 224 dim: 224 } } }\n')
    text += _conv("conv1", "data", 64, 7, 2, 3) + _relu("conv1_relu", "conv1")
    text += ('layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" '
             'pooling_param { pool: MAX kernel_size: 3 stride: 2 } }\n')
    bottom = "pool1"
    for stage, (blocks, width) in enumerate(((3, 64), (4, 128), (6, 256), (3, 512)), start=2):
        for block in range(blocks):
            name = f"res{stage}{'abcdef'[block]}"
            stride = 2 if block == 0 and stage > 2 else 1
            if block == 0:
                text += _conv(f"{name}_branch1", bottom, 4 * width, 1, stride, 0)
                shortcut = f"{name}_branch1"
            else:
                shortcut = bottom
            text += _conv(f"{name}_branch2a", bottom, width, 1, stride, 0)
            text += _relu(f"{name}_branch2a_relu", f"{name}_branch2a")
            text += _conv(f"{name}_branch2b", f"{name}_branch2a", width, 3, 1, 1)
            text += _relu(f"{name}_branch2b_relu", f"{name}_branch2b")
            text += _conv(f"{name}_branch2c", f"{name}_branch2b", 4 * width, 1, 1, 0)
            text += (f'layer {{ name: "{name}" type: "Eltwise" bottom: "{shortcut}" '
                     f'bottom: "{name}_branch2c" top: "{name}" }}\n')
            text += _relu(f"{name}_relu", name)
            bottom = name
    text += (f'layer {{ name: "pool5" type: "Pooling" bottom: "{bottom}" top: "pool5" '
             'pooling_param { pool: AVE kernel_size: 7 stride: 1 } }\n'
             'layer { name: "fc1000" type: "InnerProduct" bottom: "pool5" top: "fc1000" '
             'inner_product_param { num_output: 1000 } }\n'
             'layer { name: "prob" type: "Softmax" bottom: "fc1000" top: "prob" }\n')
    return text


if __name__ == "__main__":
    PATH.write_text(prototxt())
    print(f"wrote {PATH}")
