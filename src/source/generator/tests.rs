//! The generator must look like the API to every consumer: same shape, same quirks, reproducible.

use super::*;
use crate::process::transform;
use std::collections::HashSet;

fn page(seed: &str, page_no: u64, results: u32, nat: &[String]) -> serde_json::Value {
    let mut out = Vec::new();
    write_page(
        &mut out,
        seed,
        page_no,
        results,
        &Filters { nat, gender: None },
    )
    .unwrap();
    serde_json::from_slice(&out).unwrap()
}

fn results(doc: &serde_json::Value) -> &Vec<serde_json::Value> {
    doc["results"].as_array().unwrap()
}

#[test]
fn same_seed_same_users_and_pages_line_up() {
    let a = page("abc", 1, 20, &[]);
    assert_eq!(a, page("abc", 1, 20, &[]));
    assert_ne!(results(&a)[0], results(&page("abd", 1, 20, &[]))[0]);
    // Page 2 of size 10 is the second half of page 1 of size 20.
    assert_eq!(results(&a)[10..], results(&page("abc", 2, 10, &[]))[..]);
    assert_eq!(
        a["info"],
        serde_json::json!({"seed": "abc", "results": 20, "page": 1, "version": "1.4"})
    );
}

#[test]
fn every_field_of_the_api_shape_is_present() {
    let doc = page("shape", 1, 50, &[]);
    for user in results(&doc) {
        for path in [
            "/gender",
            "/name/title",
            "/name/first",
            "/name/last",
            "/location/street/number",
            "/location/street/name",
            "/location/city",
            "/location/state",
            "/location/country",
            "/location/postcode",
            "/location/coordinates/latitude",
            "/location/coordinates/longitude",
            "/location/timezone/offset",
            "/location/timezone/description",
            "/email",
            "/login/uuid",
            "/login/username",
            "/login/password",
            "/login/salt",
            "/login/md5",
            "/login/sha1",
            "/login/sha256",
            "/dob/date",
            "/dob/age",
            "/registered/date",
            "/registered/age",
            "/phone",
            "/cell",
            "/id/name",
            "/id/value",
            "/picture/large",
            "/picture/medium",
            "/picture/thumbnail",
            "/nat",
        ] {
            assert!(user.pointer(path).is_some(), "{path} missing in {user}");
        }
        transform(&user.to_string(), chrono::Utc::now()).unwrap_or_else(|e| panic!("{e}: {user}"));
    }
}

#[test]
fn uuids_are_unique_across_many_pages() {
    let mut seen = HashSet::new();
    for p in 1..=20 {
        for user in results(&page("uniq", p, 5000, &[])) {
            assert!(seen.insert(user["login"]["uuid"].as_str().unwrap().to_owned()));
        }
    }
    assert_eq!(seen.len(), 100_000);
}

#[test]
fn quirks_per_nationality_match_the_api() {
    let nat = |code: &str| vec![code.to_owned()];
    for user in results(&page("q", 1, 30, &nat("GB"))) {
        assert!(
            user["location"]["postcode"].is_string(),
            "GB postcode {user}"
        );
        assert_eq!(user["nat"], "GB");
    }
    for user in results(&page("q", 1, 30, &nat("US"))) {
        assert!(user["location"]["postcode"].is_u64(), "US postcode {user}");
    }
    for code in ["CA", "NL", "NO"] {
        for user in results(&page("q", 1, 10, &nat(code))) {
            assert!(user["location"]["postcode"].is_string(), "{code}: {user}");
        }
    }
    let with_null_id = NATIONALITIES
        .iter()
        .filter(|n| n.id_value.is_none())
        .count();
    assert!(
        with_null_id > 0,
        "the API sends null id.value for some nationalities"
    );
    for n in NATIONALITIES.iter().filter(|n| n.id_value.is_none()) {
        for user in results(&page("q", 1, 5, &nat(n.code))) {
            assert!(user["id"]["value"].is_null());
            transform(&user.to_string(), chrono::Utc::now()).unwrap();
        }
    }
}

#[test]
fn covers_every_nationality_and_rejects_unknown_ones() {
    assert_eq!(NATIONALITIES.len(), 21);
    let seen: HashSet<_> = results(&page("all", 1, 2000, &[]))
        .iter()
        .map(|u| u["nat"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(seen.len(), 21);
    let err = write_page(
        &mut Vec::new(),
        "s",
        1,
        1,
        &Filters {
            nat: &["XX".into()],
            gender: None,
        },
    );
    assert!(
        err.unwrap_err()
            .to_string()
            .contains("unknown nationality \"XX\"")
    );
}
