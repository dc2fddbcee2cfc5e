"""ONNX files whose tensors live in external files are refused before anything reads them:
heptagon exports never write external data, and its paths could point anywhere."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from heptagon.errors import DataError
from heptagon.publish.onnx import read_onnx


def _model(constant_node: bool) -> onnx.ModelProto:
    weight = numpy_helper.from_array(np.arange(64, dtype=np.float32).reshape(8, 8), "w")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])
    if constant_node:  # the tensor is a node attribute, not an initialiser
        nodes = [
            helper.make_node("Constant", [], ["w"], value=weight),
            helper.make_node("MatMul", ["x", "w"], ["y"]),
        ]
        graph = helper.make_graph(nodes, "g", [x], [y])
    else:
        graph = helper.make_graph(
            [helper.make_node("MatMul", ["x", "w"], ["y"])], "g", [x], [y], [weight]
        )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("constant_node", [False, True])
def test_external_tensors_are_refused(tmp_path: Path, constant_node: bool) -> None:
    inline = tmp_path / "inline.onnx"
    onnx.save_model(_model(constant_node), inline)
    assert read_onnx(inline, verify=False)[0] == inline  # the same model, inline, is read
    external = tmp_path / "external.onnx"
    onnx.save_model(
        _model(constant_node), external, save_as_external_data=True,
        all_tensors_to_one_file=True, location="weights.bin", size_threshold=0,
        convert_attribute=True,
    )  # fmt: skip
    assert (tmp_path / "weights.bin").stat().st_size == 64 * 4
    with pytest.raises(DataError, match=r"external\.onnx: .*external files"):
        read_onnx(external, verify=False)
