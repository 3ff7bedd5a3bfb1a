#!/usr/bin/env python3
"""Checks qnet's TensorBoard event files with TensorBoard's own Python code.

Usage: check_tensorboard.py bytes EVENTS_FILE SPEC_JSON | scalars RUN_DIR EXPECTED_JSON

bytes: SPEC_JSON lists, in order, the events qnet wrote to EVENTS_FILE:
    {"file_version_wall_time": 1.5,
     "scalars": [{"wall_time": 2.25, "step": 1, "tag": "loss", "value": 0.5}, ...]}
  TensorBoard's RecordWriter writes the same events (event_pb2.Event(...).SerializeToString(),
  values as summary_pb2.Summary.Value(tag=..., simple_value=...)) to a temporary file, and the
  two files must be byte-for-byte equal. On a mismatch it reports the first differing offset and
  the events of both files around it.

scalars: EXPECTED_JSON gives, per tag, every (step, value) in file order:
    {"loss": [[1, 0.5], [2, 0.25]], "return": [[1, 10.0]],
     "relative_tolerance": {"loss": 1e-3}}
  RUN_DIR must hold exactly one events file. EventAccumulator, keeping every scalar, must find
  file_version "brain.Event:2" and exactly these tags with exactly these pairs: the same steps,
  values equal as float32 (NaN matches NaN), or within the relative tolerance given for the tag
  in the optional "relative_tolerance" map (so no tag may be called "relative_tolerance").
  Exact counts matter because EventAccumulator silently drops records it cannot read.

A value is a JSON number, NaN, Infinity or -Infinity, or one of the strings "NaN", "Infinity",
"-Infinity" (serde_json writes non-finite floats as null, so it needs the strings).
Prints one OK line, or exits non-zero with the reason on stderr.
"""

import json
import math
import os
import struct
import sys
import tempfile

import numpy as np
from google.protobuf import text_format
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c
from tensorboard.summary.writer.record_writer import RecordWriter

FILE_VERSION = "brain.Event:2"
TOLERANCE_KEY = "relative_tolerance"
NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
# Events shown either side of the first difference.
CONTEXT_EVENTS = 1


class CheckFailed(Exception):
    """A check did not pass; the message says which and why."""


def load_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def parse_value(value, where):
    if isinstance(value, str) and value in NON_FINITE:
        return NON_FINITE[value]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise CheckFailed(f"{where}: value {value!r} is neither a number nor one of {sorted(NON_FINITE)}")


def expected_events(spec):
    """The serialized events that SPEC_JSON describes, as TensorBoard's protobuf writes them."""
    events = [event_pb2.Event(wall_time=spec["file_version_wall_time"], file_version=FILE_VERSION)]
    for i, scalar in enumerate(spec["scalars"]):
        value = parse_value(scalar["value"], f"scalars[{i}]")
        summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=scalar["tag"], simple_value=value)])
        events.append(event_pb2.Event(wall_time=scalar["wall_time"], step=scalar["step"], summary=summary))
    return [event.SerializeToString() for event in events]


def split_records(data):
    """(offset, event or a reason it cannot be read) for each framed record of data."""
    records, pos = [], 0
    while pos < len(data):
        if len(data) - pos < 12:
            records.append((pos, f"truncated header ({len(data) - pos} bytes left)"))
            break
        header = data[pos : pos + 8]
        (length,) = struct.unpack("<Q", header)
        (header_crc,) = struct.unpack("<I", data[pos + 8 : pos + 12])
        payload = data[pos + 12 : pos + 12 + length]
        footer = data[pos + 12 + length : pos + 16 + length]
        if header_crc != masked_crc32c(header):
            records.append((pos, f"bad length CRC (length {length})"))
            break
        if len(footer) < 4:
            records.append((pos, f"truncated record (length {length}, {len(data) - pos - 12} bytes left)"))
            break
        if struct.unpack("<I", footer)[0] != masked_crc32c(payload):
            problem = "bad data CRC"
        else:
            try:
                problem = event_pb2.Event.FromString(payload)
            except Exception as e:  # protobuf's DecodeError differs between implementations
                problem = f"undecodable Event ({type(e).__name__}: {e})"
        records.append((pos, problem))
        pos += 16 + length
    return records


def describe_around(data, offset):
    records = split_records(data)
    index = max((i for i, (start, _) in enumerate(records) if start <= offset), default=0)
    lines = []
    for i in range(max(0, index - CONTEXT_EVENTS), min(len(records), index + CONTEXT_EVENTS + 1)):
        start, event = records[i]
        text = event if isinstance(event, str) else text_format.MessageToString(event, as_one_line=True)
        marker = "*" if i == index else " "
        lines.append(f"  {marker} record {i} at byte {start}: {text}")
    return "\n".join(lines) if lines else "  (no records)"


def check_bytes(events_file, spec_json):
    spec = load_json(spec_json)
    with open(events_file, "rb") as f:
        got = f.read()
    with tempfile.TemporaryDirectory() as tmp:
        reference = os.path.join(tmp, "reference.tfevents")
        with open(reference, "wb") as f:
            writer = RecordWriter(f)
            for event in expected_events(spec):
                writer.write(event)
        with open(reference, "rb") as f:
            want = f.read()
    if got != want:
        offset = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
        raise CheckFailed(
            f"{events_file} ({len(got)} bytes) differs from TensorBoard's writer ({len(want)} bytes) "
            f"first at byte {offset}\n{events_file}:\n{describe_around(got, offset)}\n"
            f"TensorBoard's RecordWriter:\n{describe_around(want, offset)}"
        )
    return f"{events_file} is byte-identical to TensorBoard's writer ({len(spec['scalars']) + 1} events, {len(got)} bytes)"


def values_match(got, want, rel_tol):
    if math.isnan(want):
        return math.isnan(got)
    if rel_tol is None:
        with np.errstate(over="ignore"):  # a double beyond float32's range is inf there too
            return bool(np.float32(want) == got)
    return got == want or abs(got - want) <= rel_tol * abs(want)


def check_scalars(run_dir, expected_json):
    expected = load_json(expected_json)
    tolerances = expected.pop(TOLERANCE_KEY, {})
    unknown = sorted(set(tolerances) - set(expected))
    if unknown:
        raise CheckFailed(f"{expected_json}: {TOLERANCE_KEY} names tags with no expected values: {unknown}")

    event_files = sorted(name for name in os.listdir(run_dir) if "tfevents" in name)
    if len(event_files) != 1:
        raise CheckFailed(f"{run_dir} holds {len(event_files)} events files, expected exactly 1: {event_files}")

    acc = event_accumulator.EventAccumulator(run_dir, size_guidance={event_accumulator.SCALARS: 0})
    acc.Reload()
    # Version 2 makes EventAccumulator purge only on SessionLog.START, not on decreasing steps.
    if acc.file_version != 2.0:
        raise CheckFailed(f"{event_files[0]}: file_version {acc.file_version}, expected 2.0 ({FILE_VERSION!r})")
    tags = sorted(acc.Tags()[event_accumulator.SCALARS])
    if tags != sorted(expected):
        raise CheckFailed(f"{event_files[0]}: scalar tags {tags}, expected {sorted(expected)}")

    total = 0
    for tag, pairs in sorted(expected.items()):
        got = [(e.step, e.value) for e in acc.Scalars(tag)]
        want = [(step, parse_value(value, f"{tag}[{i}]")) for i, (step, value) in enumerate(pairs)]
        if len(got) != len(want):
            raise CheckFailed(f"tag {tag!r}: {len(got)} scalars, expected {len(want)}")
        rel_tol = tolerances.get(tag)
        for i, ((got_step, got_value), (want_step, want_value)) in enumerate(zip(got, want)):
            if got_step != want_step or not values_match(got_value, want_value, rel_tol):
                how = f"within relative {rel_tol}" if rel_tol is not None else "as float32"
                raise CheckFailed(
                    f"tag {tag!r}, scalar {i}: (step {got_step}, value {got_value!r}), "
                    f"expected (step {want_step}, value {want_value!r}) {how}"
                )
        total += len(got)
    return f"{event_files[0]}: EventAccumulator reads the {total} expected scalars of {len(tags)} tags"


MODES = {"bytes": check_bytes, "scalars": check_scalars}


def main(argv):
    if len(argv) != 4 or argv[1] not in MODES:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    try:
        message = MODES[argv[1]](*argv[2:])
    except (CheckFailed, OSError, KeyError, TypeError, ValueError) as e:
        print(f"check_tensorboard: FAIL: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print(f"check_tensorboard: OK: {message}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
