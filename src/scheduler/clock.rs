//! The scheduler's time: wall-clock instants (slots are wall-clock times), slept on with tokio.
//!
//! Production reads the system clock. Tests use [`Clock::following_tokio`], a wall clock that
//! advances with tokio's clock, so a test on paused time (`start_paused`) runs a day of slots in
//! milliseconds and exactly: the runtime jumps to each timer, and no sleep decides a result.

use chrono::{DateTime, SubsecRound, Utc};
use tokio::time::Instant;

#[derive(Debug, Clone)]
pub enum Clock {
    System,
    /// `start` at tokio's `anchor`, and moving as tokio's clock does.
    FollowingTokio {
        start: DateTime<Utc>,
        anchor: Instant,
    },
}

impl Clock {
    /// A clock that reads `start` now and advances with tokio's (paused, in tests) clock.
    pub fn following_tokio(start: DateTime<Utc>) -> Self {
        Clock::FollowingTokio {
            start,
            anchor: Instant::now(),
        }
    }

    /// Now, to the microsecond: what the run history stores, so a time read back compares
    /// equal to the one written.
    pub fn now(&self) -> DateTime<Utc> {
        let now = match self {
            Clock::System => Utc::now(),
            Clock::FollowingTokio { start, anchor } => {
                *start + chrono::Duration::from_std(anchor.elapsed()).unwrap_or_default()
            }
        };
        now.trunc_subsecs(6)
    }

    /// Sleeps until `at` by this clock. On the system clock a wall-clock step (NTP) can end the
    /// sleep early or late, so callers look at [`now`](Self::now) again rather than trusting it.
    pub async fn sleep_until(&self, at: DateTime<Utc>) {
        let wait = (at - self.now()).to_std().unwrap_or_default();
        tokio::time::sleep(wait).await;
    }
}
