//! The batch codec guests and the host exchange records in: decoding any bytes yields
//! records or a decode error, never a panic or a read out of bounds; records that
//! decode encode back to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rivulet_sdk::{RecordIter, encode_record};

fuzz_target!(|data: &[u8]| {
    let mut again = Vec::new();
    let mut whole = true;
    for r in RecordIter::new(data) {
        match r {
            Ok(r) => encode_record(&mut again, r.key, r.value, r.timestamp),
            Err(_) => {
                whole = false;
                break;
            }
        }
    }
    if whole {
        assert_eq!(again, data, "a batch that decodes encodes back to itself");
    }
});
