//! A client's byte stream, as the listener reads it: size-prefixed frames, each decoded
//! into a request of an advertised API and version, or refused with a frame error (the
//! connection is then closed). The record bytes of a decoded Produce request go through
//! the validation the produce path runs. Nothing may panic, hang or allocate beyond the
//! declared frame size.
#![no_main]

use bytes::{Buf, Bytes};
use kafka_protocol::messages::RequestKind;
use libfuzzer_sys::fuzz_target;
use tributary_broker::log::batch;
use tributary_broker::protocol::{self, versions, Decoded};

/// `socket.request.max.bytes` for the fuzzer: large enough for any corpus entry.
const MAX_FRAME: usize = 1 << 20;

fuzz_target!(|stream: &[u8]| {
    let mut stream = Bytes::copy_from_slice(stream);
    while stream.len() >= 4 {
        let Ok(size) = protocol::check_frame_size(stream.get_i32(), MAX_FRAME) else {
            return;
        };
        if size > stream.len() {
            return;
        }
        let frame = stream.split_to(size);
        match protocol::decode_request(frame) {
            Ok(Decoded::Request(request)) => {
                assert!(versions::is_servable(request.key, request.version));
                if let RequestKind::Produce(produce) = request.body {
                    for topic in produce.topic_data {
                        for partition in topic.partition_data {
                            if let Some(records) = partition.records {
                                check_batches(&records);
                            }
                        }
                    }
                }
            }
            Ok(Decoded::NewerApiVersions { .. }) => {}
            Err(_) => return,
        }
    }
});

fn check_batches(records: &[u8]) {
    if let Ok(batches) = batch::split_batches(records) {
        let mut end = 0;
        for (header, range) in batches {
            assert_eq!(range.start, end);
            assert_eq!(header.total_len(), range.len());
            end = range.end;
        }
        assert_eq!(end, records.len());
    }
}
