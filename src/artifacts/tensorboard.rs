//! TensorBoard event files (`events.out.tfevents.*`) written natively, without TensorFlow or
//! protoc: TFRecord framing over hand-encoded `tensorboard.Event` protobufs.
//!
//! The bytes equal what TensorBoard's own Python writer produces for the same events
//! (`RecordWriter` over `Event.SerializeToString()`); tests/python/check_tensorboard.py checks it.

/// `file_version` of the first event: "2" tells TensorBoard to purge orphaned data only on
/// SessionLog.START, so a run's steps are kept even when they are not increasing.
const FILE_VERSION: &str = "brain.Event:2";

// Field numbers from tensorboard/compat/proto/event.proto and summary.proto.
const EVENT_WALL_TIME: u32 = 1;
const EVENT_STEP: u32 = 2;
const EVENT_FILE_VERSION: u32 = 3;
const EVENT_SUMMARY: u32 = 5;
const SUMMARY_VALUE: u32 = 1;
const VALUE_TAG: u32 = 1;
const VALUE_SIMPLE_VALUE: u32 = 2;

const WIRE_VARINT: u32 = 0;
const WIRE_FIXED64: u32 = 1;
const WIRE_LEN: u32 = 2;
const WIRE_FIXED32: u32 = 5;

/// Length (u64) and its masked CRC (u32) precede each record's data.
const RECORD_HEADER_LEN: usize = 12;

/// Appends the framed record of a file's first event: `file_version` "brain.Event:2" at `wall_time`.
pub fn push_file_version(out: &mut Vec<u8>, wall_time: f64) {
    push_record(out, |out| {
        push_event_time(out, wall_time, 0);
        push_len_key(out, EVENT_FILE_VERSION, FILE_VERSION.len());
        out.extend_from_slice(FILE_VERSION.as_bytes());
    });
}

/// Appends the framed record of one scalar event (`simple_value`) for `tag` at `wall_time`, `step`.
pub fn push_scalar(out: &mut Vec<u8>, wall_time: f64, step: i64, tag: &str, value: f32) {
    // Nested lengths are prefixes, so they are computed before the bytes they count.
    let tag_len = if tag.is_empty() {
        0
    } else {
        len_field_len(VALUE_TAG, tag.len())
    };
    let value_len = tag_len + 1 + 4;
    let summary_len = len_field_len(SUMMARY_VALUE, value_len);
    push_record(out, |out| {
        push_event_time(out, wall_time, step);
        push_len_key(out, EVENT_SUMMARY, summary_len);
        push_len_key(out, SUMMARY_VALUE, value_len);
        // proto3 leaves out an empty string; simple_value, a oneof member, is always written.
        if !tag.is_empty() {
            push_len_key(out, VALUE_TAG, tag.len());
            out.extend_from_slice(tag.as_bytes());
        }
        push_key(out, VALUE_SIMPLE_VALUE, WIRE_FIXED32);
        out.extend_from_slice(&value.to_le_bytes());
    });
}

/// How every event file's name begins (TensorBoard's loaders look for `tfevents`).
pub const FILE_PREFIX: &str = "events.out.tfevents.";

/// The file name TensorBoard's loaders pick up: `events.out.tfevents.<secs>.<hostname>.qnet`.
pub fn file_name(wall_time: f64, hostname: &str) -> String {
    // Zero-padded like TensorFlow's, so that names sort in time order; `as` saturates NaN and
    // negative times to 0.
    format!("{FILE_PREFIX}{:010}.{hostname}.qnet", wall_time as u64)
}

/// Frames the data that `write` appends as one TFRecord:
/// `u64 len | u32 masked_crc(len) | data | u32 masked_crc(data)`, all little-endian.
fn push_record(out: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.resize(start + RECORD_HEADER_LEN, 0);
    write(out);
    let data_start = start + RECORD_HEADER_LEN;
    let len = ((out.len() - data_start) as u64).to_le_bytes();
    out[start..start + 8].copy_from_slice(&len);
    out[start + 8..data_start].copy_from_slice(&masked_crc32c(&len).to_le_bytes());
    let data_crc = masked_crc32c(&out[data_start..]);
    out.extend_from_slice(&data_crc.to_le_bytes());
}

/// Writes an Event's `wall_time` and `step`, leaving out default values as proto3 does.
fn push_event_time(out: &mut Vec<u8>, wall_time: f64, step: i64) {
    // protobuf compares doubles bitwise with 0: -0.0 and NaN are written, 0.0 is not.
    if wall_time.to_bits() != 0 {
        push_key(out, EVENT_WALL_TIME, WIRE_FIXED64);
        out.extend_from_slice(&wall_time.to_le_bytes());
    }
    if step != 0 {
        push_key(out, EVENT_STEP, WIRE_VARINT);
        // int64 is encoded as the two's complement u64: a negative step takes 10 bytes.
        push_varint(out, step as u64);
    }
}

fn push_key(out: &mut Vec<u8>, field: u32, wire_type: u32) {
    push_varint(out, u64::from(field << 3 | wire_type));
}

fn push_len_key(out: &mut Vec<u8>, field: u32, len: usize) {
    push_key(out, field, WIRE_LEN);
    push_varint(out, len as u64);
}

/// Bytes a length-delimited field takes: key, length varint and the `len` bytes themselves.
fn len_field_len(field: u32, len: usize) -> usize {
    varint_len(u64::from(field << 3 | WIRE_LEN)) + varint_len(len as u64) + len
}

fn push_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint_len(v: u64) -> usize {
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// CRC-32C (Castagnoli), the checksum TFRecord uses, with the reflected polynomial.
const CRC32C_TABLE: [u32; 256] = crc32c_table();

const fn crc32c_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

fn crc32c(data: &[u8]) -> u32 {
    !data.iter().fold(!0u32, |crc, &byte| {
        CRC32C_TABLE[((crc ^ u32::from(byte)) & 0xFF) as usize] ^ (crc >> 8)
    })
}

/// TFRecord stores CRCs masked, because a CRC computed over data that embeds CRCs is weak.
fn masked_crc32c(data: &[u8]) -> u32 {
    crc32c(data).rotate_right(15).wrapping_add(0xA282_EAD8)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the test decoder reads back from one record.
    #[derive(Debug, Default, PartialEq)]
    struct Event {
        wall_time: Option<f64>,
        step: Option<i64>,
        file_version: Option<String>,
        /// (tag, simple_value) pairs of the summary, if it has one.
        summary: Option<Vec<(Option<String>, Option<f32>)>>,
    }

    #[derive(Debug)]
    enum Field<'a> {
        Varint(u64),
        Fixed64(u64),
        Fixed32(u32),
        Bytes(&'a [u8]),
    }

    fn read_varint(data: &[u8], pos: &mut usize) -> u64 {
        let mut v = 0u64;
        for shift in (0..70).step_by(7) {
            let byte = data[*pos];
            *pos += 1;
            v |= u64::from(byte & 0x7F) << shift;
            if byte & 0x80 == 0 {
                return v;
            }
        }
        panic!("varint longer than 10 bytes");
    }

    fn take<'a>(data: &'a [u8], pos: &mut usize, n: usize) -> &'a [u8] {
        let bytes = &data[*pos..*pos + n];
        *pos += n;
        bytes
    }

    /// Splits a message into its fields, asserting they come in field-number order.
    fn fields(data: &[u8]) -> Vec<(u32, Field<'_>)> {
        let mut pos = 0;
        let mut out: Vec<(u32, Field<'_>)> = Vec::new();
        while pos < data.len() {
            let key = read_varint(data, &mut pos);
            let number = (key >> 3) as u32;
            let field = match key & 7 {
                0 => Field::Varint(read_varint(data, &mut pos)),
                1 => Field::Fixed64(u64::from_le_bytes(
                    take(data, &mut pos, 8).try_into().unwrap(),
                )),
                2 => {
                    let len = read_varint(data, &mut pos) as usize;
                    Field::Bytes(take(data, &mut pos, len))
                }
                5 => Field::Fixed32(u32::from_le_bytes(
                    take(data, &mut pos, 4).try_into().unwrap(),
                )),
                wire => panic!("unexpected wire type {wire}"),
            };
            if let Some((last, _)) = out.last() {
                assert!(*last < number, "field {number} after field {last}");
            }
            out.push((number, field));
        }
        out
    }

    fn decode_event(data: &[u8]) -> Event {
        let mut event = Event::default();
        for (number, field) in fields(data) {
            match (number, field) {
                (1, Field::Fixed64(bits)) => event.wall_time = Some(f64::from_bits(bits)),
                (2, Field::Varint(v)) => event.step = Some(v as i64),
                (3, Field::Bytes(b)) => {
                    event.file_version = Some(String::from_utf8(b.to_vec()).unwrap())
                }
                (5, Field::Bytes(b)) => event.summary = Some(decode_summary(b)),
                other => panic!("unexpected Event field {other:?}"),
            }
        }
        event
    }

    fn decode_summary(data: &[u8]) -> Vec<(Option<String>, Option<f32>)> {
        let mut values = Vec::new();
        for (number, field) in fields(data) {
            let (1, Field::Bytes(value)) = (number, field) else {
                panic!("unexpected Summary field {number}");
            };
            let (mut tag, mut simple_value) = (None, None);
            for (number, field) in fields(value) {
                match (number, field) {
                    (1, Field::Bytes(b)) => tag = Some(String::from_utf8(b.to_vec()).unwrap()),
                    (2, Field::Fixed32(bits)) => simple_value = Some(f32::from_bits(bits)),
                    other => panic!("unexpected Summary.Value field {other:?}"),
                }
            }
            values.push((tag, simple_value));
        }
        values
    }

    /// Reads framed records back, checking lengths and both CRCs of each.
    fn decode_records(mut data: &[u8]) -> Vec<Event> {
        let mut events = Vec::new();
        while !data.is_empty() {
            assert!(data.len() >= RECORD_HEADER_LEN + 4, "truncated record");
            let len_bytes = &data[..8];
            let len = u64::from_le_bytes(len_bytes.try_into().unwrap()) as usize;
            let len_crc = u32::from_le_bytes(data[8..12].try_into().unwrap());
            assert_eq!(len_crc, masked_crc32c(len_bytes), "length CRC");
            assert!(
                data.len() >= RECORD_HEADER_LEN + len + 4,
                "truncated record"
            );
            let payload = &data[RECORD_HEADER_LEN..RECORD_HEADER_LEN + len];
            let data_crc = u32::from_le_bytes(
                data[RECORD_HEADER_LEN + len..RECORD_HEADER_LEN + len + 4]
                    .try_into()
                    .unwrap(),
            );
            assert_eq!(data_crc, masked_crc32c(payload), "data CRC");
            events.push(decode_event(payload));
            data = &data[RECORD_HEADER_LEN + len + 4..];
        }
        events
    }

    fn varint(v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        push_varint(&mut out, v);
        assert_eq!(out.len(), varint_len(v), "varint_len({v})");
        out
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn scalar(wall_time: f64, step: i64, tag: &str, value: f32) -> Vec<u8> {
        let mut out = Vec::new();
        push_scalar(&mut out, wall_time, step, tag, value);
        out
    }

    #[test]
    fn crc32c_matches_the_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
        assert_eq!(CRC32C_TABLE[1], 0xF26B_8303);
    }

    #[test]
    fn masked_crc_rotates_and_adds_the_delta() {
        // Values from tensorboard.compat.tensorflow_stub.pywrap_tensorflow.masked_crc32c.
        assert_eq!(masked_crc32c(b""), 0xA282_EAD8);
        assert_eq!(masked_crc32c(b"123456789"), 0xC78A_B0E5);
        // 0xC1D04330 rotated right by 15 is 0x866183A0; adding the delta wraps past 2^32.
        assert_eq!(crc32c(b"a"), 0xC1D0_4330);
        assert_eq!(masked_crc32c(b"a"), 0x28E4_6E78);
        // The masked CRC of the length 24 in a record header.
        assert_eq!(masked_crc32c(&24u64.to_le_bytes()), 0x224B_7FA3);
    }

    #[test]
    fn varint_edge_cases() {
        assert_eq!(varint(0), [0x00]);
        assert_eq!(varint(1), [0x01]);
        assert_eq!(varint(127), [0x7F]);
        assert_eq!(varint(128), [0x80, 0x01]);
        assert_eq!(varint(300), [0xAC, 0x02]);
        assert_eq!(varint(16_383), [0xFF, 0x7F]);
        assert_eq!(varint(16_384), [0x80, 0x80, 0x01]);
        assert_eq!(varint(u64::MAX).len(), 10);
        assert_eq!(
            varint(-1i64 as u64),
            [0xFF; 9].iter().chain(&[0x01]).copied().collect::<Vec<_>>()
        );
        assert_eq!(varint(i64::MIN as u64).len(), 10);
        assert_eq!(varint(i64::MAX as u64).len(), 9);
        for shift in 0..64 {
            varint(1 << shift);
            varint((1 << shift) - 1);
        }
    }

    #[test]
    fn records_equal_tensorboards_own_bytes() {
        // RecordWriter(...).write(Event(wall_time=1700000000.25,
        //     file_version="brain.Event:2").SerializeToString()), tensorboard 2.21.
        let mut out = Vec::new();
        push_file_version(&mut out, 1_700_000_000.25);
        assert_eq!(
            out,
            hex("1800000000000000a37f4b220900001040fc54d9411a0d627261696e2e4576656e743a32338d2fe9")
        );
        // Event(wall_time=1700000001.5, step=42, summary=Summary(value=[
        //     Summary.Value(tag="train/loss", simple_value=0.125)]))
        assert_eq!(
            scalar(1_700_000_001.5, 42, "train/loss", 0.125),
            hex(concat!(
                "200000000000000029eda9500900006040fc54d941102a2a130a110a0a",
                "747261696e2f6c6f7373150000003e7c603aeb"
            ))
        );
    }

    #[test]
    fn proto3_defaults_are_left_out() {
        let mut out = Vec::new();
        push_file_version(&mut out, 0.0);
        assert_eq!(
            out[RECORD_HEADER_LEN..out.len() - 4],
            hex("1a0d627261696e2e4576656e743a32")
        );
        // Only the summary: no wall_time, no step, no tag; simple_value 0.0 stays (oneof).
        let out = scalar(0.0, 0, "", 0.0);
        assert_eq!(
            out[RECORD_HEADER_LEN..out.len() - 4],
            hex("2a070a051500000000")
        );
        // -0.0 is not bitwise zero, so protobuf writes it.
        let out = scalar(-0.0, 0, "a", -0.0);
        assert_eq!(
            out[RECORD_HEADER_LEN..out.len() - 4],
            hex("0900000000000000802a0a0a080a01611500000080")
        );
    }

    #[test]
    fn records_decode_back() {
        let long_tag = "x/".repeat(100);
        let unicode_tag = "épisode/récompense ∑ 🚀";
        let mut out = Vec::new();
        push_file_version(&mut out, 1.5);
        push_scalar(&mut out, 2.25, 0, "loss", 0.0);
        push_scalar(&mut out, 3.0, -1, "neg", -0.0);
        push_scalar(&mut out, 4.0, i64::MIN, "min", f32::NAN);
        push_scalar(&mut out, 5.0, i64::MAX, &long_tag, f32::INFINITY);
        push_scalar(&mut out, 6.0, 128, unicode_tag, f32::from_bits(1));
        push_scalar(&mut out, f64::NAN, 7, "t", f32::NEG_INFINITY);
        let events = decode_records(&out);
        assert_eq!(events.len(), 7);
        assert_eq!(
            events[0],
            Event {
                wall_time: Some(1.5),
                file_version: Some(FILE_VERSION.to_owned()),
                ..Event::default()
            }
        );
        let expected: [(f64, i64, &str, f32); 6] = [
            (2.25, 0, "loss", 0.0),
            (3.0, -1, "neg", -0.0),
            (4.0, i64::MIN, "min", f32::NAN),
            (5.0, i64::MAX, &long_tag, f32::INFINITY),
            (6.0, 128, unicode_tag, f32::from_bits(1)),
            (f64::NAN, 7, "t", f32::NEG_INFINITY),
        ];
        for (event, (wall_time, step, tag, value)) in events[1..].iter().zip(expected) {
            assert_eq!(event.wall_time.map(f64::to_bits), Some(wall_time.to_bits()));
            assert_eq!(event.step, (step != 0).then_some(step));
            assert_eq!(event.file_version, None);
            let summary = event.summary.as_ref().unwrap();
            assert_eq!(summary.len(), 1);
            assert_eq!(summary[0].0.as_deref(), Some(tag));
            assert_eq!(summary[0].1.map(f32::to_bits), Some(value.to_bits()));
        }
    }

    #[test]
    fn long_tags_take_multi_byte_lengths() {
        for len in (0..300).chain([16_000, 20_000]) {
            let tag = "t".repeat(len);
            let events = decode_records(&scalar(1.0, 1, &tag, 1.0));
            let summary = events[0].summary.as_ref().unwrap();
            let want_tag = (len > 0).then_some(tag.as_str());
            assert_eq!(summary[0].0.as_deref(), want_tag, "tag of {len} bytes");
        }
    }

    #[test]
    fn file_name_is_zero_padded_seconds() {
        assert_eq!(
            file_name(1_700_000_000.75, "box"),
            "events.out.tfevents.1700000000.box.qnet"
        );
        assert_eq!(
            file_name(12.0, "h"),
            "events.out.tfevents.0000000012.h.qnet"
        );
        assert_eq!(
            file_name(-5.0, "h"),
            "events.out.tfevents.0000000000.h.qnet"
        );
    }
}
