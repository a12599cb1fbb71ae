"""A tiny voice in piper's format, made here for the tests (no voice is downloaded): an ONNX
model that answers each phoneme id with 0.1 s of a 220 Hz tone, and its .onnx.json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def tiny_voice(path: Path, rate: int = 22050) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from piper.phoneme_ids import DEFAULT_PHONEME_ID_MAP

    hop = rate // 10
    tone = (0.3 * np.sin(2 * np.pi * 220 * np.arange(hop) / rate)).astype(np.float32)[None, :]
    nodes = [
        helper.make_node("Shape", ["input"], ["shape"]),
        helper.make_node("Slice", ["shape", "one", "two"], ["ids"]),
        helper.make_node("Concat", ["one", "ids"], ["repeats"], axis=0),
        helper.make_node("Tile", ["tone", "repeats"], ["tiled"]),
        helper.make_node("Unsqueeze", ["tiled", "one"], ["output"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny-voice",
        [
            helper.make_tensor_value_info("input", TensorProto.INT64, [1, None]),
            helper.make_tensor_value_info("input_lengths", TensorProto.INT64, [1]),
            helper.make_tensor_value_info("scales", TensorProto.FLOAT, [3]),
        ],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 1, None])],
        [
            numpy_helper.from_array(tone, "tone"),
            numpy_helper.from_array(np.array([1], np.int64), "one"),
            numpy_helper.from_array(np.array([2], np.int64), "two"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    config = {
        "audio": {"sample_rate": rate},
        "espeak": {"voice": "vi"},
        "num_symbols": 256,
        "num_speakers": 1,
        "phoneme_type": "espeak",
        "phoneme_id_map": DEFAULT_PHONEME_ID_MAP,
        "inference": {},
    }
    Path(f"{path}.json").write_text(json.dumps(config), encoding="utf-8")
    return path
