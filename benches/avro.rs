//! `cargo bench --bench avro`: the per-record CPU cost of each step the Kafka path adds to the
//! embedded one (Avro encoding in the relay; frame, Avro decoding and JSON rebuilding in the
//! consumer), next to the transform both paths share. Single-threaded, no I/O.
//!
//! `USERSTREAM_BENCH_USERS` sets the size (default 20000).

use std::time::Instant;
use userstream::avro::{decode_frame, decode_user, encode_user};
use userstream::process::transform;

fn main() {
    let users: u32 = std::env::var("USERSTREAM_BENCH_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let mut page = Vec::new();
    userstream::source::generator::write_page(
        &mut page,
        "avro-bench",
        1,
        users,
        &Default::default(),
    )
    .unwrap();
    let page: serde_json::Value = serde_json::from_slice(&page).unwrap();
    let records: Vec<String> = page["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            userstream::model::redact::redact_credentials(
                &serde_json::value::to_raw_value(u).unwrap(),
            )
            .into_record()
        })
        .collect();

    let step = |name: &str, run: &mut dyn FnMut()| {
        let started = Instant::now();
        run();
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "{name:<34} {:>9.0} records/s  {:>6.2} µs/record",
            records.len() as f64 / seconds,
            seconds * 1e6 / records.len() as f64
        );
    };
    let mut frames = Vec::with_capacity(records.len());
    step("encode (relay: JSON -> Avro frame)", &mut || {
        frames = records.iter().map(|r| encode_user(1, r).unwrap()).collect();
    });
    // As the consumer has it: the writer schema fetched from the registry, parsed there.
    let writer = apache_avro::Schema::parse_str(userstream::avro::USER_SCHEMA).unwrap();
    let mut decoded = Vec::with_capacity(records.len());
    step("decode (consumer: frame -> JSON)", &mut || {
        decoded = frames
            .iter()
            .map(|f| {
                let (id, datum) = decode_frame(f).unwrap();
                decode_user(id, &writer, datum).unwrap()
            })
            .collect();
    });
    step("transform (JSON -> row, both paths)", &mut || {
        for record in &decoded {
            std::hint::black_box(transform(record, chrono::DateTime::UNIX_EPOCH).unwrap());
        }
    });
    let bytes: usize = frames.iter().map(Vec::len).sum();
    let json: usize = records.iter().map(String::len).sum();
    println!(
        "size: {} B Avro vs {} B JSON per record on average",
        bytes / records.len(),
        json / records.len()
    );
}
