//! The metrics a test's own code emitted, read back: a recorder installed for the current thread
//! only, so tests running side by side never see each other's counts. Only for tests on a
//! current-thread runtime, where everything the test awaits runs on its thread.

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use std::cell::RefCell;
use std::collections::HashMap;

/// A counter's name and labels.
type Series = (String, Vec<(String, String)>);

pub struct LocalMetrics {
    snapshotter: Snapshotter,
    /// Counter totals by name and labels: a snapshot hands over (and resets) every counter, so
    /// they are summed here.
    totals: RefCell<HashMap<Series, u64>>,
    _guard: metrics::LocalRecorderGuard<'static>,
}

impl LocalMetrics {
    /// Records this thread's metrics from now until dropped.
    pub fn install() -> Self {
        // Leaked: the guard borrows the recorder for as long as the test runs (a few bytes).
        let recorder: &'static DebuggingRecorder = Box::leak(Box::new(DebuggingRecorder::new()));
        Self {
            snapshotter: recorder.snapshotter(),
            totals: RefCell::default(),
            _guard: metrics::set_default_local_recorder(recorder),
        }
    }

    /// The counter `name` with the label `key` = `value`; 0 if it was never incremented.
    pub fn counter(&self, name: &str, key: &str, value: &str) -> u64 {
        let mut totals = self.totals.borrow_mut();
        for (composite, _, _, counted) in self.snapshotter.snapshot().into_vec() {
            if let DebugValue::Counter(n) = counted {
                let key_of = composite.key();
                let labels = key_of
                    .labels()
                    .map(|l| (l.key().to_owned(), l.value().to_owned()))
                    .collect();
                *totals
                    .entry((key_of.name().to_owned(), labels))
                    .or_default() += n;
            }
        }
        totals
            .iter()
            .filter(|((n, labels), _)| {
                n == name && labels.iter().any(|(k, v)| k == key && v == value)
            })
            .map(|(_, n)| n)
            .sum()
    }
}

/// Every metric name the shipped Grafana dashboard and Prometheus alert rules query.
pub fn queried_by_deploy_files() -> std::collections::BTreeSet<String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    let queried = [
        root.join("grafana/dashboards/userstream.json"),
        root.join("prometheus/alerts.yml"),
    ]
    .map(|file| std::fs::read_to_string(file).unwrap())
    .concat();
    let mut names = std::collections::BTreeSet::new();
    for (at, _) in queried.match_indices("userstream_") {
        let name: String = queried[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if name != "userstream_" {
            names.insert(name); // not a job or uid named "userstream"
        }
    }
    names
}

/// The metric names in a Prometheus text scrape.
pub fn exported(scrape: &str) -> std::collections::BTreeSet<&str> {
    scrape
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| line.split(['{', ' ']).next())
        .collect()
}
