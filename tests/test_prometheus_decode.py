"""The fast matrix decoder agrees with a plain JSON parse on every value, bit for bit."""

import struct

import numpy as np
import orjson
import pytest

from obs_pipelines.errors import SourceError
from obs_pipelines.sources.prometheus_decode import PROMETHEUS_NAN_BITS, decode_matrix


def response(result: list[dict], indent: bool = False) -> bytes:
    body = {"status": "success", "data": {"resultType": "matrix", "result": result}}
    return orjson.dumps(body, option=orjson.OPT_INDENT_2 if indent else 0)


def bits(values: np.ndarray) -> list[int]:
    return values.view(np.uint64).tolist()


SERIES = [
    {
        "metric": {
            "__name__": "edge_bytes",
            "path": 'C:\\temp\\"q"',
            "note": "a\nb ✓",
            "x": '"values":[1,2]',
        },
        "values": [
            [1700000000.001, "0.30000000000000004"],
            [1700000000.5, "NaN"],
            [1700000001, "+Inf"],
        ],
    },
    {
        "metric": {"__name__": "up", "job": "a"},
        "values": [[1700000002.999, "-Inf"], [1700000003.1, "-0"], [1700000004, "5e-324"]],
    },
    {
        "metric": {"__name__": "big"},
        "values": [[1700000005.25, "1.7976931348623157e+308"], [1700000006, "123456789012345678"]],
    },
]


@pytest.mark.parametrize("indent", [False, True], ids=["compact", "pretty-printed (slow path)"])
def test_labels_timestamps_and_values_are_exact(indent: bool) -> None:
    decoded = decode_matrix(response(SERIES, indent))

    assert decoded.label_sets == [s["metric"] for s in SERIES]
    assert decoded.counts.tolist() == [3, 3, 2]
    assert decoded.ts_ms.tolist() == [
        1700000000001,
        1700000000500,
        1700000001000,
        1700000002999,
        1700000003100,
        1700000004000,
        1700000005250,
        1700000006000,
    ]
    expected = [
        0.1 + 0.2,
        float("nan"),
        float("inf"),
        float("-inf"),
        -0.0,
        5e-324,
        1.7976931348623157e308,
        123456789012345678.0,
    ]
    expected_bits = [
        int(PROMETHEUS_NAN_BITS) if v != v else struct.unpack("<Q", struct.pack("<d", v))[0]
        for v in expected
    ]
    assert bits(decoded.values) == expected_bits


def test_an_empty_result_has_no_series() -> None:
    decoded = decode_matrix(response([]))
    assert decoded.label_sets == [] and decoded.samples == 0


def test_an_error_body_and_native_histograms_are_refused_clearly() -> None:
    with pytest.raises(SourceError, match=r"^Prometheus answered an error"):
        decode_matrix(b'{"status":"error","errorType":"bad_data","error":"parse error"}')
    native = response([{"metric": {"__name__": "h"}, "histograms": [[1, {"count": "1"}]]}])
    with pytest.raises(SourceError, match="native histogram"):
        decode_matrix(native)
