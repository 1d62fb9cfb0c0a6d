//! The N newest items of a stream, in O(N) memory: how a store without an ordered index (Cassandra
//! keeps rows in token order) answers "latest N" while paging through a table of any size.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

/// Keeps the `limit` items with the greatest keys seen so far.
pub struct Newest<K: Ord, T> {
    limit: usize,
    /// A min-heap (through `Reverse`), so the oldest kept item is the one to evict.
    heap: BinaryHeap<Reverse<Entry<K, T>>>,
}

struct Entry<K, T> {
    key: K,
    item: T,
}

impl<K: Ord, T> PartialEq for Entry<K, T> {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl<K: Ord, T> Eq for Entry<K, T> {}
impl<K: Ord, T> PartialOrd for Entry<K, T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<K: Ord, T> Ord for Entry<K, T> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key.cmp(&other.key)
    }
}

impl<K: Ord, T> Newest<K, T> {
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            heap: BinaryHeap::with_capacity(limit.min(4096) + 1),
        }
    }

    pub fn push(&mut self, key: K, item: T) {
        if self.limit == 0 {
            return;
        }
        if self.heap.len() < self.limit {
            self.heap.push(Reverse(Entry { key, item }));
        } else if self
            .heap
            .peek()
            .is_some_and(|Reverse(oldest)| key > oldest.key)
        {
            self.heap.pop();
            self.heap.push(Reverse(Entry { key, item }));
        }
    }

    /// The kept items, greatest key first.
    pub fn into_vec(self) -> Vec<T> {
        // `into_sorted_vec` is ascending in `Reverse`, i.e. descending in the key.
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|Reverse(entry)| entry.item)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::Newest;

    #[test]
    fn keeps_the_greatest_keys_newest_first() {
        let mut newest = Newest::new(3);
        for (key, item) in [(5, 'e'), (1, 'a'), (9, 'i'), (3, 'c'), (7, 'g'), (2, 'b')] {
            newest.push(key, item);
        }
        assert_eq!(newest.into_vec(), ['i', 'g', 'e']);
        let mut none = Newest::new(0);
        none.push(1, 'a');
        assert!(none.into_vec().is_empty());
    }
}
