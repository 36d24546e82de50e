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
    with pytest.raises(SourceError) as error:
        decode_matrix(
            b'{"status":"error","errorType":"bad_data","error":"parse error"}', "Prometheus at X"
        )
    assert str(error.value) == (
        "Prometheus at X answered an error (parse error); check sources.prometheus.url points "
        "at the Prometheus server"
    )
    native = response([{"metric": {"__name__": "h"}, "histograms": [[1, {"count": "1"}]]}])
    with pytest.raises(SourceError, match=r"^Prometheus at X returned native histogram"):
        decode_matrix(native, "Prometheus at X")


@pytest.mark.parametrize("indent", [False, True], ids=["compact", "pretty-printed (slow path)"])
def test_a_body_cut_after_a_whole_series_is_not_taken_for_a_smaller_answer(indent: bool) -> None:
    body = response(SERIES, indent)
    second = body.rindex(b"{", 0, body.index(b'"metric"', body.index(b'"metric"') + 1))
    ends = [second, len(body) - 1, len(body) - 2]  # after a series and its comma; the closers
    if not indent:
        ends.append(body.index(b"]]}") + 3)  # right after the first series
    for cut in (body[:end] for end in ends):
        with pytest.raises(SourceError) as error:
            decode_matrix(cut, "Prometheus at X")
        assert str(error.value) == (
            f"Prometheus at X closed the connection before its answer was complete (the JSON "
            f"ends after {len(cut)} bytes); check the server's health and any proxy in between, "
            "then rerun"
        )


@pytest.mark.parametrize("indent", [False, True], ids=["compact", "pretty-printed (slow path)"])
def test_a_sample_value_or_label_of_the_wrong_kind_names_the_series(indent: bool) -> None:
    fine, other = SERIES[1], SERIES[2]
    bad_value = {"metric": other["metric"], "values": [[1700000005, "1"], [1700000006, "nope"]]}
    bad_time = {"metric": other["metric"], "values": [[None, "1"]]}
    bad_label = {"metric": {"__name__": "up", "code": 200}, "values": [[1700000005, "1"]]}
    cases = {
        'sample value "nope" of big{} is not a number': bad_value,
        'sample [null,"1"] of big{} is not a [time, "value"] pair': bad_time,
        'a series without a label set: {"metric":{"__name__":"up","code":200},': bad_label,
    }
    for detail, series in cases.items():
        with pytest.raises(SourceError) as error:
            decode_matrix(response([fine, series], indent), "Prometheus at X")
        assert str(error.value).startswith(
            f"Prometheus at X sent a malformed answer, not a Prometheus API response ({detail}"
        ), str(error.value)
        assert str(error.value).endswith(
            "; check sources.prometheus.url points at the Prometheus server"
        )
