//! The HTTP/2 frame and HPACK vectors: frame rules of RFC 9113 §3-§6 (stream ids and
//! states, frame sizes, SETTINGS, flow control, padding, CONTINUATION sequencing, the
//! preface) and HPACK decoding errors (RFC 7541, RFC 9113 §4.3). Building blocks and
//! verdicts are in `h2_vectors.rs`.

use super::frame::{flag, kind, setting, Frame, Reason};
use super::hpack::Block;
use super::vectors::{
    base_then, conn, hpack, open_stream, v, Answer, Attack, Class, Reach, Req, Vector, Verdict,
    FLOW, FRAME_SIZE, PROTOCOL,
};

/// The frame and HPACK vectors, in table order.
pub(crate) fn vectors() -> Vec<Vector> {
    use Class::*;
    vec![
        // --- frame rules (RFC 9113 §3-§6) ---
        conn(
            "data-on-stream-0",
            "RFC 9113 §6.1",
            vec![Frame::data(0, b"x", false)],
            PROTOCOL,
        ),
        conn(
            "headers-on-stream-0",
            "RFC 9113 §6.2",
            vec![Frame::headers(
                0,
                Req::get().header_block(),
                flag::END_HEADERS | flag::END_STREAM,
            )],
            PROTOCOL,
        ),
        conn(
            "headers-on-even-stream",
            "RFC 9113 §5.1.1",
            vec![Frame::headers(
                4,
                Req::get().header_block(),
                flag::END_HEADERS | flag::END_STREAM,
            )],
            PROTOCOL,
        ),
        v(
            "stream-id-going-down",
            FrameRules,
            "RFC 9113 §5.1.1",
            Attack::Frames(vec![
                Frame::headers(
                    9,
                    Req::get().header_block(),
                    flag::END_HEADERS | flag::END_STREAM,
                ),
                Frame::headers(
                    7,
                    Req::get().header_block(),
                    flag::END_HEADERS | flag::END_STREAM,
                ),
            ]),
            Verdict {
                answer: Answer::ConnectionError {
                    codes: &[Reason::PROTOCOL_ERROR, Reason::STREAM_CLOSED],
                    or_eof: false,
                },
                reach: Reach::Any,
            },
        ),
        conn(
            "data-on-idle-stream",
            "RFC 9113 §5.1",
            vec![Frame::data(3, b"x", true)],
            PROTOCOL,
        ),
        conn(
            "rst-stream-on-idle-stream",
            "RFC 9113 §6.4",
            vec![Frame::rst(3, Reason::CANCEL)],
            PROTOCOL,
        ),
        conn(
            "window-update-on-idle-stream",
            "RFC 9113 §5.1",
            vec![Frame::window_update(3, 100)],
            PROTOCOL,
        ),
        conn(
            "continuation-on-idle-stream",
            "RFC 9113 §6.10",
            vec![Frame::continuation(3, Req::get().header_block(), true)],
            PROTOCOL,
        ),
        conn(
            "rst-stream-on-stream-0",
            "RFC 9113 §6.4",
            vec![Frame::rst(0, Reason::CANCEL)],
            PROTOCOL,
        ),
        conn(
            "rst-stream-wrong-length",
            "RFC 9113 §6.4",
            vec![
                open_stream(),
                Frame::new(kind::RST_STREAM, 0, 3, vec![0, 0, 0, 8, 0]),
            ],
            FRAME_SIZE,
        ),
        conn(
            "settings-wrong-length",
            "RFC 9113 §6.5",
            vec![Frame::new(kind::SETTINGS, 0, 0, vec![0, 4, 0, 0, 0, 1, 0])],
            FRAME_SIZE,
        ),
        conn(
            "settings-ack-with-payload",
            "RFC 9113 §6.5",
            vec![Frame::new(
                kind::SETTINGS,
                flag::ACK,
                0,
                vec![0, 4, 0, 0, 0, 1],
            )],
            FRAME_SIZE,
        ),
        conn(
            "settings-on-a-stream",
            "RFC 9113 §6.5",
            vec![Frame::new(kind::SETTINGS, 0, 1, Vec::new())],
            PROTOCOL,
        ),
        conn(
            "settings-enable-push-2",
            "RFC 9113 §6.5.2",
            vec![Frame::settings(&[(setting::ENABLE_PUSH, 2)])],
            PROTOCOL,
        ),
        conn(
            "settings-initial-window-too-large",
            "RFC 9113 §6.5.2",
            vec![Frame::settings(&[(setting::INITIAL_WINDOW_SIZE, 1 << 31)])],
            FLOW,
        ),
        conn(
            "settings-max-frame-size-too-small",
            "RFC 9113 §6.5.2",
            vec![Frame::settings(&[(setting::MAX_FRAME_SIZE, 16_383)])],
            PROTOCOL,
        ),
        conn(
            "settings-max-frame-size-too-large",
            "RFC 9113 §6.5.2",
            vec![Frame::settings(&[(setting::MAX_FRAME_SIZE, 1 << 24)])],
            PROTOCOL,
        ),
        v(
            "settings-unknown-identifier",
            FrameRules,
            "RFC 9113 §6.5.2",
            Attack::Frames(vec![Frame::settings(&[(0x99, 7)])]),
            Verdict::ignored(),
        ),
        conn(
            "ping-wrong-length",
            "RFC 9113 §6.7",
            vec![Frame::new(kind::PING, 0, 0, vec![0; 7])],
            FRAME_SIZE,
        ),
        conn(
            "ping-on-a-stream",
            "RFC 9113 §6.7",
            vec![Frame::new(kind::PING, 0, 1, vec![0; 8])],
            PROTOCOL,
        ),
        conn(
            "goaway-on-a-stream",
            "RFC 9113 §6.8",
            vec![Frame::new(kind::GOAWAY, 0, 1, vec![0; 8])],
            PROTOCOL,
        ),
        conn(
            "window-update-wrong-length",
            "RFC 9113 §6.9",
            vec![Frame::new(kind::WINDOW_UPDATE, 0, 0, vec![0, 0, 1])],
            FRAME_SIZE,
        ),
        conn(
            "window-update-zero-on-connection",
            "RFC 9113 §6.9",
            vec![Frame::window_update(0, 0)],
            PROTOCOL,
        ),
        v(
            "window-update-zero-on-stream",
            FrameRules,
            "RFC 9113 §6.9",
            Attack::Frames(vec![open_stream(), Frame::window_update(3, 0)]),
            Verdict::stream(PROTOCOL, Reach::Incomplete),
        ),
        conn(
            "window-update-overflows-connection",
            "RFC 9113 §6.9.1",
            vec![
                Frame::window_update(0, 0x7fff_ffff),
                Frame::window_update(0, 0x7fff_ffff),
            ],
            FLOW,
        ),
        v(
            "window-update-overflows-stream",
            FrameRules,
            "RFC 9113 §6.9.1",
            Attack::Frames(vec![open_stream(), Frame::window_update(3, 0x7fff_ffff)]),
            Verdict::stream(FLOW, Reach::Incomplete),
        ),
        v(
            "priority-wrong-length",
            FrameRules,
            "RFC 9113 §6.3",
            Attack::Frames(vec![Frame::new(kind::PRIORITY, 0, 3, vec![0, 0, 0, 0])]),
            Verdict::stream(FRAME_SIZE, Reach::Nothing),
        ),
        conn(
            "priority-on-stream-0",
            "RFC 9113 §6.3",
            vec![Frame::priority(0, 1, false, 16)],
            PROTOCOL,
        ),
        v(
            "priority-on-idle-stream",
            FrameRules,
            "RFC 9113 §5.1, §6.3",
            Attack::Frames(vec![Frame::priority(7, 0, false, 16)]),
            Verdict::ignored(),
        ),
        v(
            "priority-self-dependency",
            FrameRules,
            "RFC 7540 §5.3.1",
            Attack::Frames(vec![Frame::priority(3, 3, false, 16)]),
            Verdict::stream(PROTOCOL, Reach::Nothing),
        ),
        v(
            "headers-self-dependency",
            FrameRules,
            "RFC 7540 §5.3.1",
            Attack::Frames(vec![Frame::headers(
                3,
                [&[0, 0, 0, 3, 15][..], &Req::get().header_block()].concat(),
                flag::END_HEADERS | flag::END_STREAM | flag::PRIORITY,
            )]),
            Verdict::stream(PROTOCOL, Reach::Nothing),
        ),
        conn(
            "headers-frame-too-large",
            "RFC 9113 §4.2",
            vec![Frame::headers(
                3,
                base_then(
                    &Block::new()
                        .literal(b"x-pad", &vec![b'a'; 16_400])
                        .into_bytes(),
                ),
                flag::END_HEADERS | flag::END_STREAM,
            )],
            FRAME_SIZE,
        ),
        conn(
            "data-frame-too-large",
            "RFC 9113 §4.2",
            vec![open_stream(), Frame::data(3, &vec![b'a'; 16_385], true)],
            FRAME_SIZE,
        ),
        conn(
            "push-promise-from-client",
            "RFC 9113 §8.4",
            vec![
                open_stream(),
                Frame::new(
                    kind::PUSH_PROMISE,
                    flag::END_HEADERS,
                    3,
                    [&[0, 0, 0, 2][..], &Req::get().header_block()].concat(),
                ),
            ],
            PROTOCOL,
        ),
        conn(
            "continuation-interrupted",
            "RFC 9113 §6.10",
            vec![
                Frame::headers(3, Req::get().header_block(), flag::END_STREAM),
                Frame::ping([0; 8], false),
            ],
            PROTOCOL,
        ),
        conn(
            "continuation-on-another-stream",
            "RFC 9113 §6.10",
            vec![
                Frame::headers(3, Req::get().header_block(), flag::END_STREAM),
                Frame::continuation(5, Vec::new(), true),
            ],
            PROTOCOL,
        ),
        conn(
            "headers-padding-too-long",
            "RFC 9113 §6.2",
            vec![Frame::headers(
                3,
                Req::get().header_block(),
                flag::END_HEADERS | flag::END_STREAM,
            )
            .padded(255, 0)],
            PROTOCOL,
        ),
        conn(
            "data-padding-too-long",
            "RFC 9113 §6.1",
            vec![open_stream(), Frame::data(3, b"hello", true).padded(200, 0)],
            PROTOCOL,
        ),
        v(
            "data-after-end-stream",
            FrameRules,
            "RFC 9113 §5.1 (half-closed remote)",
            Attack::Frames(vec![
                Frame::headers(
                    3,
                    Req::get().header_block(),
                    flag::END_HEADERS | flag::END_STREAM,
                ),
                Frame::data(3, b"smuggled", true),
            ]),
            Verdict {
                answer: Answer::StreamError {
                    codes: &[Reason::STREAM_CLOSED],
                    statuses: &[],
                },
                reach: Reach::Any,
            },
        ),
        v(
            "unknown-frame-type",
            FrameRules,
            "RFC 9113 §4.1, §5.5",
            Attack::Frames(vec![
                Frame::new(0xfa, 0xff, 0, b"ignore me".to_vec()),
                Frame::new(0xfb, 0, 1, b"ignore me too".to_vec()),
            ]),
            Verdict::ignored(),
        ),
        v(
            "preface-invalid",
            FrameRules,
            "RFC 9113 §3.4",
            Attack::Opening(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n".to_vec()),
            Verdict {
                answer: Answer::ConnectionError {
                    codes: PROTOCOL,
                    or_eof: true,
                },
                reach: Reach::Nothing,
            },
        ),
        v(
            "preface-then-ping-not-settings",
            FrameRules,
            "RFC 9113 §3.4",
            Attack::Opening([super::frame::PREFACE, &Frame::ping([0; 8], false).encode()].concat()),
            Verdict {
                answer: Answer::ConnectionError {
                    codes: PROTOCOL,
                    or_eof: true,
                },
                reach: Reach::Nothing,
            },
        ),
        // --- HPACK decoding errors (RFC 9113 §4.3: COMPRESSION_ERROR) ---
        hpack(
            "hpack-index-zero",
            "RFC 7541 §6.1",
            base_then(&[0x80]),
            "the GET's fields + indexed field 0",
        ),
        hpack(
            "hpack-index-past-the-table",
            "RFC 7541 §2.3.3",
            base_then(&Block::new().indexed(70).into_bytes()),
            "the GET's fields + index 70 (empty dynamic table)",
        ),
        hpack(
            "hpack-size-update-over-the-limit",
            "RFC 7541 §6.3",
            Block::new()
                .size_update(1 << 20)
                .into_bytes()
                .into_iter()
                .chain(base_then(&[]))
                .collect(),
            "size update to 1 MiB (limit 4096), then the GET's fields",
        ),
        hpack(
            "hpack-size-update-after-a-field",
            "RFC 7541 §4.2",
            base_then(&Block::new().size_update(0).into_bytes()),
            "the GET's fields, then a size update",
        ),
        hpack(
            "hpack-huffman-eos",
            "RFC 7541 §5.2",
            base_then(&[0x00, 0x01, b'x', 0x84, 0xff, 0xff, 0xff, 0xff]),
            "the GET's fields + a value that Huffman-decodes to EOS",
        ),
        hpack(
            "hpack-huffman-padding-zeros",
            "RFC 7541 §5.2",
            base_then(&[0x00, 0x01, b'x', 0x81, 0b0001_1000]),
            "the GET's fields + a Huffman value padded with zeros",
        ),
        hpack(
            "hpack-huffman-padding-too-long",
            "RFC 7541 §5.2",
            base_then(&[0x00, 0x01, b'x', 0x82, 0b0001_1111, 0xff]),
            "the GET's fields + a Huffman value with 11 bits of padding",
        ),
        hpack(
            "hpack-integer-overflow",
            "RFC 7541 §5.1",
            base_then(&[
                0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
            ]),
            "the GET's fields + an index of more than 64 bits",
        ),
        hpack(
            "hpack-string-past-the-block",
            "RFC 7541 §5.2",
            base_then(&[0x00, 0x01, b'x', 0x64, b'a', b'b', b'c']),
            "the GET's fields + a 100-byte string holding 3 bytes",
        ),
        hpack(
            "hpack-block-cut-short",
            "RFC 7541 §3.1",
            base_then(&[0x00, 0x05, b'x']),
            "the GET's fields + half a literal",
        ),
    ]
}
