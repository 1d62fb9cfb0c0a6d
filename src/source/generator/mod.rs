//! A built-in randomuser.me: the same JSON shape, every field, realistic values per nationality,
//! reproducible from a seed.
//!
//! User number `i` of a seed is a pure function of (seed, nationality filter, gender filter, i):
//! page `p` of size `n` holds users `(p-1)*n .. p*n`, so a restarted ingest that refetches a page
//! gets the very same users, as with the real API's `seed` + `page`. (The real API seeds each page
//! on its own instead, so pages of different sizes overlap differently there; ingest never mixes
//! page sizes within a seed, which makes the two models alike for it.) `login.uuid` is 122 random
//! bits drawn from that per-user stream, unique for any realistic volume.

pub mod nationalities;
mod user;

pub use nationalities::{NATIONALITIES, Nationality};
pub use user::GeneratedUser;

use super::page::{Page, parse_page};
use super::{FetchError, FetchRequest, Source};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// Which users to generate; mirrors the API's `nat` and `gender` parameters.
#[derive(Debug, Clone, Default)]
pub struct Filters<'a> {
    /// Uppercase nationality codes; empty means all.
    pub nat: &'a [String],
    pub gender: Option<user::Gender>,
}

pub use user::Gender;

/// The `info` object the API appends to each page.
#[derive(Serialize)]
struct Info<'a> {
    seed: &'a str,
    results: u32,
    page: u64,
    version: &'static str,
}

/// Writes a full API response body (`{"results": [...], "info": {...}}`) into `out`.
pub fn write_page(
    out: &mut Vec<u8>,
    seed: &str,
    page: u64,
    results: u32,
    filters: &Filters<'_>,
) -> Result<(), UnknownNationality> {
    let nationalities = select(filters.nat)?;
    let stream = stream_key(seed, filters);
    out.extend_from_slice(b"{\"results\":[");
    let first = page.saturating_sub(1).saturating_mul(u64::from(results));
    let now_year = chrono::Datelike::year(&chrono::Utc::now());
    for i in 0..u64::from(results) {
        if i > 0 {
            out.push(b',');
        }
        let mut rng = ChaCha8Rng::seed_from_u64(splitmix64(stream ^ splitmix64(first + i)));
        let user = GeneratedUser::new(&mut rng, &nationalities, filters.gender, now_year);
        serde_json::to_writer(&mut *out, &user).expect("writing JSON to a Vec cannot fail");
    }
    out.extend_from_slice(b"],\"info\":");
    let info = Info {
        seed,
        results,
        page,
        version: "1.4",
    };
    serde_json::to_writer(&mut *out, &info).expect("writing JSON to a Vec cannot fail");
    out.push(b'}');
    Ok(())
}

/// A `nat` code the API does not know.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "unknown nationality {0:?}; known: AU, BR, CA, CH, DE, DK, ES, FI, FR, GB, IE, IN, IR, MX, NL, NO, NZ, RS, TR, UA, US"
)]
pub struct UnknownNationality(pub String);

fn select(codes: &[String]) -> Result<Vec<&'static Nationality>, UnknownNationality> {
    if codes.is_empty() {
        return Ok(NATIONALITIES.iter().collect());
    }
    codes
        .iter()
        .map(|code| {
            NATIONALITIES
                .iter()
                .find(|n| n.code.eq_ignore_ascii_case(code.trim()))
                .ok_or_else(|| UnknownNationality(code.clone()))
        })
        .collect()
}

/// Checks nationality codes up front, so bad config fails at start, not at the first fetch.
pub fn validate_nationalities(codes: &[String]) -> Result<(), UnknownNationality> {
    select(codes).map(|_| ())
}

/// One 64-bit key per (seed, filters): different filters give different users, as on the API.
fn stream_key(seed: &str, filters: &Filters<'_>) -> u64 {
    // FNV-1a: tiny, and unlike std's hasher guaranteed stable across Rust releases, which the
    // seed -> users mapping must be.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        hash ^= 0xff;
    };
    feed(seed.as_bytes());
    for code in filters.nat {
        feed(code.trim().to_ascii_uppercase().as_bytes());
    }
    feed(match filters.gender {
        None => b"any",
        Some(Gender::Male) => b"male",
        Some(Gender::Female) => b"female",
    });
    hash
}

/// SplitMix64's finaliser: spreads consecutive indexes over the whole seed space.
fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The generator as an ingest [`Source`]: pages are rendered to JSON and parsed back, so offline
/// runs and benchmarks go through the same parsing as real API bodies.
#[derive(Debug, Default)]
pub struct GeneratorSource {
    buffer: Vec<u8>,
}

impl GeneratorSource {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Source for GeneratorSource {
    fn key(&self) -> String {
        "generator".to_owned()
    }

    async fn fetch(&mut self, request: &FetchRequest<'_>) -> Result<Page, FetchError> {
        self.buffer.clear();
        let filters = Filters {
            nat: request.nat,
            gender: None,
        };
        write_page(
            &mut self.buffer,
            request.seed,
            request.page,
            request.results,
            &filters,
        )
        .map_err(|e| FetchError::Rejected {
            status: 400,
            reason: e.to_string(),
        })?;
        parse_page(&self.buffer)
    }
}

#[cfg(test)]
mod tests;
