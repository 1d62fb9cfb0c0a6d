//! One generated user, field for field the shape randomuser.me 1.4 returns.

use super::nationalities::{FEMALE_TITLES, MALE_TITLES, Nationality, PostcodeFormat, TIMEZONES};
use chrono::{DateTime, Datelike, SecondsFormat};
use rand::Rng;
use rand::seq::IndexedRandom;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gender {
    Male,
    Female,
}

impl std::str::FromStr for Gender {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "male" => Ok(Gender::Male),
            "female" => Ok(Gender::Female),
            other => Err(format!("unknown gender {other:?}; expected male or female")),
        }
    }
}

#[derive(Serialize)]
pub struct GeneratedUser {
    gender: &'static str,
    name: Name,
    location: Location,
    email: String,
    login: Login,
    dob: Dated,
    registered: Dated,
    phone: String,
    cell: String,
    id: IdDocument,
    picture: Picture,
    nat: &'static str,
}

#[derive(Serialize)]
struct Name {
    title: &'static str,
    first: &'static str,
    last: &'static str,
}

#[derive(Serialize)]
struct Location {
    street: Street,
    city: &'static str,
    state: &'static str,
    country: &'static str,
    postcode: Postcode,
    coordinates: Coordinates,
    timezone: Timezone,
}

#[derive(Serialize)]
struct Street {
    number: u32,
    name: &'static str,
}

/// A number for most nationalities, a string for others: the API's best-known quirk.
#[derive(Serialize)]
#[serde(untagged)]
enum Postcode {
    Number(u64),
    Text(String),
}

#[derive(Serialize)]
struct Coordinates {
    latitude: String,
    longitude: String,
}

#[derive(Serialize)]
struct Timezone {
    offset: &'static str,
    description: &'static str,
}

#[derive(Serialize)]
struct Login {
    uuid: String,
    username: String,
    password: &'static str,
    salt: String,
    md5: String,
    sha1: String,
    sha256: String,
}

#[derive(Serialize)]
struct Dated {
    date: String,
    age: i32,
}

#[derive(Serialize)]
struct IdDocument {
    name: &'static str,
    value: Option<String>,
}

#[derive(Serialize)]
struct Picture {
    large: String,
    medium: String,
    thumbnail: String,
}

const ADJECTIVES: &[&str] = &[
    "yellow",
    "purple",
    "silver",
    "tiny",
    "lazy",
    "happy",
    "angry",
    "brave",
    "crazy",
    "heavy",
    "orange",
    "black",
    "white",
    "red",
    "blue",
    "green",
    "golden",
    "beautiful",
    "ticklish",
    "sad",
];
const ANIMALS: &[&str] = &[
    "peacock",
    "tiger",
    "rabbit",
    "koala",
    "bear",
    "fish",
    "goose",
    "panda",
    "zebra",
    "lion",
    "swan",
    "frog",
    "leopard",
    "dog",
    "cat",
    "ladybug",
    "wolf",
    "bird",
    "snake",
    "butterfly",
];
/// The API draws passwords from a list of common ones; these are such words, never real secrets.
const PASSWORDS: &[&str] = &[
    "addison", "sunshine", "dragon", "monkey", "letmein", "shadow", "master", "qwerty", "football",
    "baseball", "welcome", "ninja", "mustang", "access", "trustno1", "starwars", "freedom",
    "hello",
];

const HEX: &[u8; 16] = b"0123456789abcdef";
const ALNUM: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

// Millisecond bounds: born 1946..2004, registered 2002..2023, like the API's ranges.
const DOB_FROM: i64 = -757_382_400_000;
const DOB_TO: i64 = 1_072_915_200_000;
const REGISTERED_FROM: i64 = 1_009_843_200_000;
const REGISTERED_TO: i64 = 1_672_531_200_000;

impl GeneratedUser {
    pub fn new<R: Rng>(
        rng: &mut R,
        nationalities: &[&'static Nationality],
        gender: Option<Gender>,
        now_year: i32,
    ) -> Self {
        // The uuid comes first so that it depends only on the per-user stream.
        let uuid = uuid::Builder::from_random_bytes(rng.random()).into_uuid();
        let nat = *nationalities.choose(rng).expect("at least one nationality");
        let gender = gender.unwrap_or(if rng.random() {
            Gender::Male
        } else {
            Gender::Female
        });
        let (first, title) = match gender {
            Gender::Male => (pick(rng, nat.male_first), title(rng, nat, MALE_TITLES)),
            Gender::Female => (pick(rng, nat.female_first), title(rng, nat, FEMALE_TITLES)),
        };
        let last = pick(rng, nat.last);
        let (city, state) = *nat.places.choose(rng).expect("nationality has places");
        let (offset, description) = *TIMEZONES.choose(rng).expect("timezones");
        let dob = date(rng, DOB_FROM, DOB_TO, now_year);
        let registered = date(rng, REGISTERED_FROM, REGISTERED_TO, now_year);
        let portrait_kind = if gender == Gender::Male {
            "men"
        } else {
            "women"
        };
        let portrait = rng.random_range(0..100);
        let portrait_url = |size: &str| {
            format!("https://randomuser.me/api/portraits/{size}{portrait_kind}/{portrait}.jpg")
        };
        let username = format!(
            "{}{}{}",
            pick(rng, ADJECTIVES),
            pick(rng, ANIMALS),
            rng.random_range(100..1000)
        );
        GeneratedUser {
            gender: if gender == Gender::Male {
                "male"
            } else {
                "female"
            },
            name: Name { title, first, last },
            location: Location {
                street: Street {
                    number: rng.random_range(1..10_000),
                    name: pick(rng, nat.streets),
                },
                city,
                state,
                country: nat.country,
                postcode: postcode(rng, nat.postcode),
                coordinates: Coordinates {
                    latitude: format!("{:.4}", rng.random_range(-90.0..90.0)),
                    longitude: format!("{:.4}", rng.random_range(-180.0..180.0)),
                },
                timezone: Timezone {
                    offset,
                    description,
                },
            },
            email: format!("{}.{}@example.com", first, last)
                .to_lowercase()
                .replace(' ', ""),
            login: Login {
                uuid: uuid.to_string(),
                username,
                password: pick(rng, PASSWORDS),
                salt: random_chars(rng, ALNUM, 8),
                md5: random_chars(rng, HEX, 32),
                sha1: random_chars(rng, HEX, 40),
                sha256: random_chars(rng, HEX, 64),
            },
            dob,
            registered,
            phone: fill(rng, nat.phone),
            cell: fill(rng, nat.cell),
            id: IdDocument {
                name: nat.id_name,
                value: nat.id_value.map(|pattern| fill(rng, pattern)),
            },
            picture: Picture {
                large: portrait_url(""),
                medium: portrait_url("med/"),
                thumbnail: portrait_url("thumb/"),
            },
            nat: nat.code,
        }
    }
}

fn pick<R: Rng>(rng: &mut R, from: &[&'static str]) -> &'static str {
    from.choose(rng).expect("non-empty word list")
}

/// French-speaking nationalities get the French titles the API uses for them.
fn title<R: Rng>(rng: &mut R, nat: &Nationality, titles: &[&'static str]) -> &'static str {
    let french = matches!(nat.code, "FR" | "CH");
    let local: Vec<&'static str> = titles
        .iter()
        .copied()
        .filter(|t| (t.len() > 4) == french)
        .collect();
    pick(rng, if local.is_empty() { titles } else { &local })
}

fn date<R: Rng>(rng: &mut R, from_ms: i64, to_ms: i64, now_year: i32) -> Dated {
    let ts = DateTime::from_timestamp_millis(rng.random_range(from_ms..to_ms))
        .expect("bounds are valid timestamps");
    Dated {
        date: ts.to_rfc3339_opts(SecondsFormat::Millis, true),
        age: now_year - ts.year(),
    }
}

fn postcode<R: Rng>(rng: &mut R, format: PostcodeFormat) -> Postcode {
    match format {
        PostcodeFormat::Number(digits) => {
            let low = 10u64.pow(u32::from(digits.max(1)) - 1);
            Postcode::Number(rng.random_range(low..low * 10))
        }
        PostcodeFormat::Pattern(pattern) => Postcode::Text(fill(rng, pattern)),
    }
}

/// Expands a pattern: `#` a digit, `A` an uppercase letter, anything else literally.
fn fill<R: Rng>(rng: &mut R, pattern: &str) -> String {
    pattern
        .chars()
        .map(|c| match c {
            '#' => char::from(b'0' + rng.random_range(0..10u8)),
            'A' => char::from(b'A' + rng.random_range(0..26u8)),
            other => other,
        })
        .collect()
}

fn random_chars<R: Rng>(rng: &mut R, alphabet: &[u8], len: usize) -> String {
    (0..len)
        .map(|_| char::from(alphabet[rng.random_range(0..alphabet.len())]))
        .collect()
}
