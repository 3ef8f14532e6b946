//! A snapshot's manifest as read from checkpoint storage (a copied savepoint, a damaged
//! or hostile file): parsing it returns a manifest or an error naming what is wrong, and
//! a manifest that parses encodes back to itself and can be looked up for a restore at
//! any parallelism without a panic.
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use rivulet_checkpoint::{Manifest, RestorePoint};

fuzz_target!(|data: &[u8]| {
    let Ok(manifest) = Manifest::parse(data, "fuzz/_manifest.json") else { return };
    let encoded = serde_json::to_vec(&manifest).expect("a parsed manifest encodes");
    let again = Manifest::parse(&encoded, "fuzz/_manifest.json").expect("an encoded manifest parses");
    assert_eq!(serde_json::to_vec(&again).expect("encodes"), encoded, "a manifest encodes back to itself");
    for file in manifest.files() {
        let _ = manifest.relocated(file, "savepoints/sp-moved");
    }
    let max = u32::from(manifest.max_parallelism).min(4);
    let uids: Vec<String> = manifest.operators.iter().map(|o| o.uid.clone()).collect();
    let sources: Vec<String> = manifest.sources.iter().map(|s| s.id.clone()).collect();
    let point = RestorePoint::in_memory(manifest, "fuzz".to_owned(), HashMap::new());
    for parallelism in 1..=max {
        for subtask in 0..parallelism {
            for uid in &uids {
                let _ = point.operator(uid, subtask, parallelism);
            }
            for id in &sources {
                let _ = point.source(id, subtask, parallelism);
                let _ = point.sink(id, subtask);
            }
        }
    }
});
