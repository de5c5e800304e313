//! Record-batch validation, as produce requests and replication run it: any bytes either
//! split into batches that each validate on their own, or are refused with an error that
//! maps onto a Kafka error code. A valid batch stays valid once the broker stamps it.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use tributary_broker::log::batch::{self, BatchIter, Stamp};

fuzz_target!(|data: &[u8]| {
    match batch::split_batches(data) {
        Ok(batches) => {
            for (header, range) in batches {
                let bytes = &data[range];
                assert_eq!(batch::validate(bytes), Ok(header));
                for log_append_time in [None, Some(1_700_000_000_000)] {
                    let stamp = Stamp {
                        base_offset: 42,
                        partition_leader_epoch: 7,
                        log_append_time,
                    };
                    let mut stamped = batch::stamped_header(bytes, stamp).to_vec();
                    stamped.extend_from_slice(&bytes[batch::HEADER_LEN..]);
                    let restamped =
                        batch::validate(&stamped).expect("stamping keeps a batch valid");
                    assert_eq!(restamped.base_offset, 42);
                    assert_eq!(restamped.record_count, header.record_count);
                }
            }
        }
        Err(e) => {
            let _ = e.kafka_error();
        }
    }
    // Reads from a segment stop at the first incomplete batch, never past the buffer.
    let mut consumed = 0;
    for (header, bytes) in BatchIter::new(Bytes::copy_from_slice(data)) {
        assert_eq!(header.total_len(), bytes.len());
        consumed += bytes.len();
    }
    assert!(consumed <= data.len());
});
