"""Table tests for the runner pipe protocol: frames and message shapes."""

from __future__ import annotations

import struct
from datetime import UTC, datetime
from typing import Any

import pytest

from spool_agent import protocol
from spool_agent.protocol import (
    Call,
    FrameDecoder,
    FrameError,
    FrameTooLarge,
    LogLine,
    LogStream,
    Progress,
    Result,
    encode_frame,
)

READY = {"kind": "ready"}
CALL = {"kind": "call", "id": "c1", "function": "run", "kwargs": {"x": [1, 2]}, "context": {}}
UNICODE = {"kind": "progress", "id": "é", "percent": 5, "message": "日本 ✓"}


def raw(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


def chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def decode_all(pieces: list[bytes], max_size: int = protocol.MAX_FRAME_SIZE) -> list[Any]:
    decoder = FrameDecoder(max_size)
    frames: list[Any] = []
    for piece in pieces:
        frames.extend(decoder.feed(piece))
    assert decoder.pending == 0
    return frames


STREAM = encode_frame(READY) + encode_frame(CALL) + encode_frame(UNICODE)


@pytest.mark.parametrize(
    ("pieces", "expected"),
    [
        ([encode_frame(READY)], [READY]),
        ([STREAM], [READY, CALL, UNICODE]),
        (chunks(STREAM, 1), [READY, CALL, UNICODE]),
        (chunks(STREAM, 3), [READY, CALL, UNICODE]),
        (chunks(STREAM, 7), [READY, CALL, UNICODE]),
        ([STREAM[:2], STREAM[2:]], [READY, CALL, UNICODE]),  # split inside the header
        ([STREAM[:10], b"", STREAM[10:]], [READY, CALL, UNICODE]),  # an empty read
        ([b""], []),
    ],
    ids=["one", "three-in-one-feed", "bytewise", "by-3", "by-7", "split-header", "empty", "none"],
)
def test_decoder_reassembles_frames(pieces: list[bytes], expected: list[Any]) -> None:
    assert decode_all(pieces) == expected


def test_decoder_returns_nothing_until_a_frame_is_whole() -> None:
    decoder = FrameDecoder()
    frame = encode_frame(CALL)
    assert decoder.feed(frame[:-1]) == []
    assert decoder.pending == len(frame) - 1
    assert decoder.feed(frame[-1:]) == [CALL]


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (raw(b"{not json"), FrameError),
        (raw(b"[1, 2]"), FrameError),  # not an object
        (raw(b'{"id": "x"}'), FrameError),  # no kind
        (raw(b'{"kind": 3}'), FrameError),
        (raw(b"\xff\xfe"), FrameError),
        (struct.pack(">I", 101), FrameTooLarge),  # refused from the header alone
        (raw(b'{"kind": "' + b"x" * 100 + b'"}'), FrameTooLarge),
    ],
    ids=["bad-json", "array", "no-kind", "kind-not-str", "not-utf8", "header-over-cap", "over"],
)
def test_decoder_rejects_bad_frames(data: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        FrameDecoder(max_size=100).feed(data)


def test_encode_refuses_frames_over_the_cap() -> None:
    with pytest.raises(FrameTooLarge, match="exceeds the 50-byte cap"):
        encode_frame({"kind": "result", "output": "x" * 50}, max_size=50)


@pytest.mark.parametrize("value", [object(), {1: "non-str key"}, 2**70, {1, 2}])
def test_encode_raises_type_error_for_what_json_cannot_hold(value: object) -> None:
    with pytest.raises(TypeError):
        encode_frame({"kind": "result", "output": value})


def test_header_is_big_endian_length_of_the_orjson_body() -> None:
    frame = encode_frame(READY)
    assert frame[:4] == len(b'{"kind":"ready"}').to_bytes(4, "big")
    assert frame[4:] == b'{"kind":"ready"}'


@pytest.mark.parametrize(
    "message",
    [
        Call("c1", "run", {"a": 1}, {"execution_id": "e1"}),
        Call("c1", "run", {"items": [{"id": "i"}]}, {}, {"items": "Item[]", "n": "Integer"}),
        Result("c1", True, {"out": [1, None]}, None, 0.25),
        Result("c2", False, None, protocol.error_info("ValueError", "bad", "tb"), 1.5),
        Progress("c3", 40, "halfway"),
        Progress("c4", 100, None),
    ],
)
def test_messages_survive_the_wire(message: Call | Result | Progress) -> None:
    (frame,) = FrameDecoder().feed(encode_frame(message.to_frame()))
    assert type(message).from_frame(frame) == message


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        *[(0, 0), (55, 55), (100, 100), (101, 100), (-3, 0), (42.9, 42), ("70", 70)],
        *[("x", 0), (None, 0), (float("nan"), 0), (float("inf"), 0)],
    ],
)
def test_clamp_percent(value: object, expected: int) -> None:
    assert protocol.clamp_percent(value) == expected


def test_progress_from_the_wire_is_clamped() -> None:
    frame = {"kind": "progress", "id": "c1", "percent": 250, "message": 7}
    assert Progress.from_frame(frame) == Progress("c1", 100, "7")


def test_error_info_tolerates_missing_and_extra_fields() -> None:
    assert protocol.error_info(message="boom", extra=1) == {
        "type": "Error",
        "message": "boom",
        "traceback": "",
    }


def test_a_call_frame_without_types_has_none() -> None:
    assert Call.from_frame(CALL).types == {}


WHEN = datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=UTC)


def test_log_lines_survive_the_wire() -> None:
    lines = [
        LogLine(LogStream.STDOUT, "hello", WHEN),
        LogLine(LogStream.STDERR, "", WHEN),
        LogLine(LogStream.LOG, "WARNING user: 日本 ✓", WHEN),
    ]
    (frame,) = FrameDecoder().feed(encode_frame(protocol.log_frame("c1", lines)))
    assert frame["kind"] == "log"
    assert frame["id"] == "c1"
    assert frame["lines"][0] == {"stream": "stdout", "line": "hello", "at": WHEN.timestamp()}
    assert protocol.log_lines(frame) == lines


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"stream": "bogus", "line": "x", "at": 0}, (LogStream.LOG, "x", 0.0)),
        ({"stream": "stdout", "line": 5, "at": "nope"}, (LogStream.STDOUT, "5", 0.0)),
        ({"stream": "stderr", "at": 1e300}, (LogStream.STDERR, "", 0.0)),
        ({}, (LogStream.LOG, "", 0.0)),
    ],
)
def test_log_lines_tolerate_odd_entries(
    entry: dict[str, Any], expected: tuple[LogStream, str, float]
) -> None:
    stream, line, seconds = expected
    when = datetime.fromtimestamp(seconds, UTC)
    assert protocol.log_lines({"kind": "log", "lines": [entry, "not-an-object"]}) == [
        LogLine(stream, line, when)
    ]


def test_started_frame() -> None:
    assert protocol.started_frame("c1", 4242) == {"kind": "started", "id": "c1", "pid": 4242}


@pytest.mark.parametrize(
    ("limit", "figure"),
    [
        (4 * 1024 * 1024, "4.0MB"),
        (1024 * 1024, "1.0MB"),
        (3 * 1024 * 1024 // 2, "1.5MB"),
        (5_000_000, "4.77MB"),
        (1000, "0.000954MB"),
    ],
)
def test_output_too_large_message(limit: int, figure: str) -> None:
    assert protocol.output_too_large_message(limit) == (
        "The function execution was successful, but the output couldn't be saved because it "
        f"was larger than the maximum size allowed of {figure}"
    )


def test_dump_json_default_and_raw_json() -> None:
    assert protocol.dump_json({"a": {1, 2}}, default=sorted) == b'{"a":[1,2]}'
    embedded = {"kind": "result", "output": protocol.raw_json(b'{"x":[1,2]}')}
    (frame,) = FrameDecoder().feed(encode_frame(embedded))
    assert frame["output"] == {"x": [1, 2]}
