"""MindSpore Serving REST through real gunicorn, broker and worker processes."""

from __future__ import annotations

import base64
import io
import json
import socket
import time

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from tests.gateways.rest.test_json_numbers import strict_loads
from tests.gateways.rest_stack import STRICT_MAX_BODY_MB, RestStack, call, post_json

STRICT_LIMIT = STRICT_MAX_BODY_MB * 1024 * 1024

ADD_BODY = b'{"instances":{"x1":[[1.0,1.0],[1.0,1.0]],"x2":[[1.0,1.0],[1.0,1.0]]}}'


def echo(stack: RestStack, value: object) -> object:
    status, answer = post_json(stack.plain(), "/model/echo:echo", {"instances": {"x": value}})
    assert status == 200, answer
    assert len(answer["instances"]) == 1, answer
    return answer["instances"][0]["y"]


def test_the_reference_curl_example_answers_byte_for_byte(rest_stack: RestStack) -> None:
    status, headers, body = call(rest_stack.plain(), "POST", "/model/add:add_common", ADD_BODY)
    assert (status, headers["content-type"]) == (200, "application/json")
    assert body == b'{"instances":[{"y":[[2.0,2.0],[2.0,2.0]]}]}'


def test_a_version_in_the_url_runs_that_version(rest_stack: RestStack) -> None:
    path = "/model/add/version/1:add_common"
    _, _, body = call(rest_stack.plain(), "POST", path, ADD_BODY)
    assert body == b'{"instances":[{"y":[[2.0,2.0],[2.0,2.0]]}]}'


def test_json_integers_are_cast_by_add_cast(rest_stack: RestStack) -> None:
    document = {"instances": [{"x1": [[1, 2], [3, 4]], "x2": [[10, 20], [30, 40]]}] * 2}
    status, answer = post_json(rest_stack.plain(), "/model/add:add_cast", document)
    assert (status, answer) == (200, {"instances": [{"y": [[11.0, 22.0], [33.0, 44.0]]}] * 2})


@pytest.mark.parametrize(
    "value",
    [
        7,
        -(2**31),
        1.5,
        True,
        False,
        "héllo",
        [[1, 2], [3, 4]],
        [0.25, -8.0],
        [[True], [False]],
    ],
)
def test_json_scalars_and_arrays_round_trip(rest_stack: RestStack, value: object) -> None:
    assert echo(rest_stack, value) == value


def test_a_one_string_array_reaches_python_stages_as_a_str(rest_stack: RestStack) -> None:
    assert echo(rest_stack, ["s"]) == "s"


B64_CASES: dict[str, np.ndarray] = {
    "int8": np.array([[-128, 127]], np.int8),
    "int16": np.array([-32768, 32767], np.int16),
    "int32": np.array([[-(2**31)], [2**31 - 1]], np.int32),
    "int64": np.array([-(2**63), 2**63 - 1], np.int64),
    "uint8": np.array([0, 255], np.uint8),
    "uint16": np.array([65535], np.uint16),
    "uint32": np.array([2**32 - 1, 0], np.uint32),
    "uint64": np.array([2**64 - 1], np.uint64),
    "fp16": np.array([[0.5, -2.0], [65504.0, 0.0]], np.float16),
    "float16": np.array([1.0], np.float16),
    "fp32": np.array([0.1, 3.5], np.float32),
    "float32": np.array([[[1e-3]]], np.float32),
    "fp64": np.array([0.1, -1e300], np.float64),
    "float64": np.array([2.0], np.float64),
    "bool": np.array([True, False, True]),
}


@pytest.mark.parametrize("type_name", sorted(B64_CASES))
def test_b64_tensors_of_every_type_round_trip(rest_stack: RestStack, type_name: str) -> None:
    array = B64_CASES[type_name]
    value = {
        "b64": base64.b64encode(array.tobytes()).decode(),
        "type": type_name,
        "shape": list(array.shape),
    }
    assert echo(rest_stack, value) == array.tolist()


def test_a_b64_scalar_comes_back_as_a_json_scalar(rest_stack: RestStack) -> None:
    value = {"b64": base64.b64encode(np.float64(2.5).tobytes()).decode(), "type": "fp64"}
    assert echo(rest_stack, value) == 2.5


def test_b64_strings_and_bytes_round_trip(rest_stack: RestStack) -> None:
    raw = b"\x00\xffbytes"
    assert echo(rest_stack, {"b64": base64.b64encode(raw).decode()}) == {
        "b64": base64.b64encode(raw).decode()
    }
    text = {"b64": base64.b64encode("中文".encode()).decode(), "type": "str"}
    assert echo(rest_stack, text) == "中文"


def test_several_outputs_come_back_with_sorted_keys(rest_stack: RestStack) -> None:
    body = json.dumps({"instances": [{"b": 2, "a": "x"}]}).encode()
    _, _, answer = call(rest_stack.plain(), "POST", "/model/echo:pair", body)
    assert answer == b'{"instances":[{"a":"x","b":2}]}'


def test_good_and_bad_instances_fail_alone(rest_stack: RestStack) -> None:
    document = {"instances": [{"x": 1}, {"x": -1}, {"x": [2, 3]}]}
    status, answer = post_json(rest_stack.plain(), "/model/echo:checked", document)
    assert status == 200
    first, second, third = answer["instances"]
    assert (first, third) == ({"y": 1}, {"y": [2, 3]})
    assert list(second) == ["error_msg"]
    assert "x must not be negative" in second["error_msg"]


@pytest.mark.parametrize(
    ("path", "body", "needle"),
    [
        ("/model/add:add_common", b"", "http message invalid"),
        ("/model/add:add_common", b"{", "Illegal JSON format."),
        (
            "/model/add:add_common",
            b"{}",
            "Parser request failed, key 'instances' expects to exist once",
        ),
        (
            "/model/add:add_common",
            b'{"instances": {"x1": [[1, 2], [3]]}}',
            "Parser request failed, invalid json array: json size is 1, the dim 1 expected to be 2",
        ),
        ("/model/add:add_common", b'{"instances": {"x2": [[1.0]]}}', "x1"),
        (
            "/model/add:add_common",
            b'{"instances": {"x1": [[1.0, 1.0], [1.0, NaN]]}}',
            "Illegal JSON format.NaN at $.instances.x1[1][1] is not valid JSON",
        ),
        ("/model/add:add_common", b'{"instances": {"x1": 1, "x2": 1}}', "x1"),
        ("/model/nothing:add_common", ADD_BODY, "servable"),
        ("/model/add:nothing", ADD_BODY, "method"),
        ("/model/add/version/7:add_common", ADD_BODY, "servable"),
        (
            "/model/add/version/v1:add_common",
            ADD_BODY,
            "please check url, the keyword:[version] value invalid, request version number v1",
        ),
        ("/model/add", ADD_BODY, "please check url, the keyword:[service method] must contain."),
        ("/model", ADD_BODY, "please check url, the keyword:[model] must contain."),
    ],
)
def test_errors_answer_200_with_an_error_msg(
    rest_stack: RestStack, path: str, body: bytes, needle: str
) -> None:
    status, headers, answer = call(rest_stack.plain(), "POST", path, body)
    assert (status, headers["content-type"]) == (200, "application/json")
    document = json.loads(answer)
    assert list(document) == ["error_msg"]
    assert needle in document["error_msg"]


def test_a_model_computing_nan_and_infinities_answers_strict_json(rest_stack: RestStack) -> None:
    x1 = np.array([[np.inf, np.inf], [-np.inf, 1]], np.float32)
    x2 = np.array([[-np.inf, 1], [1, 1]], np.float32)
    document = {
        "instances": {
            name: {"b64": base64.b64encode(x.tobytes()).decode(), "type": "fp32", "shape": [2, 2]}
            for name, x in (("x1", x1), ("x2", x2))
        }
    }
    body = json.dumps(document).encode()
    status, _, answer = call(rest_stack.plain(), "POST", "/model/add:add_common", body)
    assert status == 200
    assert answer == b'{"instances":[{"y":[["NaN","Infinity"],["-Infinity",2.0]]}]}'
    assert strict_loads(answer) == json.loads(answer)


def test_only_post_is_allowed_on_predict_routes(rest_stack: RestStack) -> None:
    status, _, answer = call(rest_stack.plain(), "GET", "/model/add:add_common")
    assert (status, json.loads(answer)) == (
        200,
        {"error_msg": "http message only support POST right now"},
    )


def png(pixels: np.ndarray) -> bytes:
    """An 8x8 digit (0..16) as a PNG of 8-bit grey levels."""
    buffer = io.BytesIO()
    Image.fromarray(np.round(pixels.reshape(8, 8) * 255 / 16).astype(np.uint8), "L").save(
        buffer, "PNG"
    )
    return buffer.getvalue()


def test_the_digits_classifier_answers_a_png_sent_as_b64(rest_stack: RestStack) -> None:
    digits = load_digits()
    picks = [int(np.flatnonzero(digits.target == digit)[-1]) for digit in range(10)]
    images = [{"image": {"b64": base64.b64encode(png(digits.data[i])).decode()}} for i in picks]
    pixels = [{"pixels": digits.data[i].reshape(8, 8).astype(np.float32).tolist()} for i in picks]
    _, from_png = post_json(
        rest_stack.plain(), "/model/digits:predict_image", {"instances": images}
    )
    _, from_pixels = post_json(rest_stack.plain(), "/model/digits:predict", {"instances": pixels})
    labels = [answer["label"] for answer in from_png["instances"]]
    assert labels == [answer["label"] for answer in from_pixels["instances"]]
    assert sum(label == digit for digit, label in enumerate(labels)) >= 9
    for answer in from_png["instances"]:
        assert answer["classes"][0] == answer["label"]
        assert len(answer["scores"]) == 3
        assert answer["scores"] == sorted(answer["scores"], reverse=True)


def test_the_timeout_header_becomes_the_deadline(rest_stack: RestStack) -> None:
    started = time.monotonic()
    status, answer = post_json(
        rest_stack.plain(),
        "/model/slow:nap",
        {"instances": {"seconds": 1.5}},
        **{"X-MSQ-Timeout-Ms": "300"},
    )
    assert time.monotonic() - started < 1.2
    assert status == 200
    assert answer["error_msg"].startswith("request timed out")


def test_a_bad_timeout_header_is_refused(rest_stack: RestStack) -> None:
    status, answer = post_json(
        rest_stack.plain(), "/model/add:add_common", {}, **{"X-MSQ-Timeout-Ms": "soon"}
    )
    assert (status, answer) == (
        200,
        {"error_msg": "X-MSQ-Timeout-Ms must be a positive number, not 'soon'"},
    )


def wait_until_slow_is_idle(stack: RestStack) -> None:
    """Wait until the broker reports nothing queued or running for `slow` (earlier tests)."""
    busy = ("msq_route_queued_instances", "msq_route_in_flight_jobs")
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        text = call(stack.plain(), "GET", "/metrics")[2].decode()
        lines = [line for line in text.splitlines() if line.startswith(busy) and '"slow"' in line]
        if lines and all(line.endswith(" 0.0") for line in lines):
            return
        time.sleep(0.1)
    raise AssertionError("the slow servable stayed busy")


def nap_stats(stack: RestStack) -> int:
    _, _, body = call(stack.plain(), "GET", "/v2/models/slow/stats")
    return sum(
        entry["inference_stats"]["success"]["count"] for entry in json.loads(body)["model_stats"]
    )


def test_a_client_that_disconnects_withdraws_its_queued_instances(rest_stack: RestStack) -> None:
    wait_until_slow_is_idle(rest_stack)
    before = nap_stats(rest_stack)
    busy = [rest_stack.plain(), rest_stack.plain()]
    for connection in busy:  # two separate jobs take the slow worker's two credits
        body = json.dumps({"instances": {"seconds": 1.0}}).encode()
        connection.request("POST", "/model/slow:nap", body=body)
        time.sleep(0.1)
    queued = json.dumps({"instances": {"seconds": 0.01}}).encode()
    with socket.create_connection(("127.0.0.1", rest_stack.plain_port)) as gone:
        head = f"POST /model/slow:nap HTTP/1.1\r\nHost: x\r\nContent-Length: {len(queued)}\r\n\r\n"
        gone.sendall(head.encode() + queued)
        time.sleep(0.3)  # queued at the broker behind the busy jobs, then the client leaves
    for connection in busy:
        assert json.loads(connection.getresponse().read()) == {"instances": [{"slept": 1.0}]}
    time.sleep(0.5)  # had the queued instance survived, it would have run by now
    assert nap_stats(rest_stack) - before == 2


# --- the strict gateway: HTTPS with client certificates, real status codes, 1 MB bodies ----


def test_https_answers_a_client_with_a_certificate(rest_stack: RestStack) -> None:
    _, _, body = call(rest_stack.strict(), "POST", "/model/add:add_common", ADD_BODY)
    assert body == b'{"instances":[{"y":[[2.0,2.0],[2.0,2.0]]}]}'


def test_https_refuses_a_client_without_a_certificate(rest_stack: RestStack) -> None:
    with pytest.raises((OSError, ConnectionError)):
        call(rest_stack.strict(with_certificate=False), "GET", "/v2/health/live")


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/model/add:add_common", b"{", 400),
        ("/model/add:add_common", b'{"instances": {"x1": [[Infinity]]}}', 400),
        ("/model/add:add_common", b'{"instances": {"x2": [[1.0]]}}', 400),
        ("/model/nothing:add_common", ADD_BODY, 404),
        ("/model/add", ADD_BODY, 404),
    ],
)
def test_real_status_codes_on_request(
    rest_stack: RestStack, path: str, body: bytes, status: int
) -> None:
    answer_status, _, answer = call(rest_stack.strict(), "POST", path, body)
    assert answer_status == status
    assert list(json.loads(answer)) == ["error_msg"]


def test_real_status_codes_keep_200_for_mixed_outcomes(rest_stack: RestStack) -> None:
    status, answer = post_json(
        rest_stack.strict(), "/model/echo:checked", {"instances": [{"x": 1}, {"x": -1}]}
    )
    assert status == 200
    assert answer["instances"][0] == {"y": 1}


def test_a_passed_deadline_is_504(rest_stack: RestStack) -> None:
    status, answer = post_json(
        rest_stack.strict(),
        "/model/slow:nap",
        {"instances": {"seconds": 2.0}},
        **{"X-MSQ-Timeout-Ms": "200"},
    )
    assert status == 504
    assert list(answer) == ["error_msg"]


@pytest.mark.parametrize("chunked", [False, True])
def test_bodies_over_the_limit_are_413(rest_stack: RestStack, chunked: bool) -> None:
    connection = rest_stack.strict()
    if chunked:
        big = b" " * (STRICT_LIMIT + 1)
        connection.request("POST", "/model/add:add_common", body=iter([big]), encode_chunked=True)
    else:
        # A declared length over the limit is answered before the body is read, so the test
        # sends only its start: a client still writing a large body may see the connection
        # close (over TLS: an SSL EOF) before it reads the answer. (gunicorn's asgi worker
        # passes a request on once some body arrived: with none, it answers 500 after 30 s.)
        connection.putrequest("POST", "/model/add:add_common")
        connection.putheader("Content-Length", str(STRICT_LIMIT + 1))
        connection.endheaders(b" " * 100)
    response = connection.getresponse()
    assert response.status == 413
    assert json.loads(response.read()) == {
        "error_msg": f"http message is bigger than {STRICT_LIMIT} bytes"
    }
