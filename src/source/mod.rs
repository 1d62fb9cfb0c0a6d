//! Where user records come from.
//!
//! * [`randomuser`]: the real randomuser.me API client (rate budget, retries, every quirk).
//! * [`generator`]: a built-in, seeded generator emitting the same JSON, for offline runs and load.
//! * [`serve_api`]: a local randomuser.me-compatible HTTP endpoint backed by the generator.
//!
//! Every source hands back the records of a page as raw JSON, parsed by the same [`page`] code, so
//! the generator exercises exactly the path real API bodies take.

pub mod error;
pub mod generator;
pub mod page;
pub mod randomuser;
pub mod serve_api;

pub use error::FetchError;
pub use generator::GeneratorSource;
pub use page::Page;
pub use randomuser::RandomUserClient;

use std::future::Future;

/// One page request, in the API's own terms: `seed` + `page` select a reproducible set of users.
#[derive(Debug, Clone)]
pub struct FetchRequest<'a> {
    /// Users wanted, 1..=5000.
    pub results: u32,
    pub seed: &'a str,
    /// 1-based.
    pub page: u64,
    /// Nationality codes (`US`, `GB`, ...); empty means all.
    pub nat: &'a [String],
}

/// A producer of pages of raw user records.
pub trait Source: Send {
    /// Stable name of this source, under which ingest stores its paging cursor.
    fn key(&self) -> String;
    fn fetch(
        &mut self,
        request: &FetchRequest<'_>,
    ) -> impl Future<Output = Result<Page, FetchError>> + Send;
}

/// The sources a command line can choose between at run time.
pub enum AnySource {
    Generator(GeneratorSource),
    RandomUser(Box<RandomUserClient>),
}

impl Source for AnySource {
    fn key(&self) -> String {
        match self {
            AnySource::Generator(s) => s.key(),
            AnySource::RandomUser(s) => s.key(),
        }
    }

    async fn fetch(&mut self, request: &FetchRequest<'_>) -> Result<Page, FetchError> {
        match self {
            AnySource::Generator(s) => s.fetch(request).await,
            AnySource::RandomUser(s) => s.fetch(request).await,
        }
    }
}
