//! The record of what an emulator received, shared by every provider emulator.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// At most this many records are kept; the oldest go first. Bounds memory under a load run,
/// while tests, which send a handful of requests, see everything.
const CAPACITY: usize = 10_000;

/// An append-only, bounded, shared list of records.
///
/// A std mutex: sections only push, clone or clear, and never span an `.await`.
#[derive(Debug)]
pub(crate) struct Journal<T> {
    records: Arc<Mutex<VecDeque<T>>>,
    /// How many records were ever pushed; tests await it instead of sleeping.
    pushed: Arc<tokio::sync::watch::Sender<usize>>,
}

impl<T> Clone for Journal<T> {
    fn clone(&self) -> Self {
        Journal { records: Arc::clone(&self.records), pushed: Arc::clone(&self.pushed) }
    }
}

impl<T: Clone> Journal<T> {
    pub(crate) fn new() -> Journal<T> {
        let (pushed, _) = tokio::sync::watch::channel(0);
        Journal { records: Arc::new(Mutex::new(VecDeque::new())), pushed: Arc::new(pushed) }
    }

    pub(crate) fn push(&self, record: T) {
        {
            let mut records = self.lock();
            if records.len() == CAPACITY {
                records.pop_front();
            }
            records.push_back(record);
        }
        self.pushed.send_modify(|count| *count += 1);
    }

    /// Completes once `n` records have been pushed since the journal was created (clearing does
    /// not reset the count).
    pub(crate) async fn wait_for_pushed(&self, n: usize) {
        let mut pushed = self.pushed.subscribe();
        // The sender lives as long as `self`, so the wait cannot fail.
        let _ = pushed.wait_for(|count| *count >= n).await;
    }

    /// Every kept record, oldest first.
    pub(crate) fn snapshot(&self) -> Vec<T> {
        self.lock().iter().cloned().collect()
    }

    pub(crate) fn clear(&self) {
        self.lock().clear();
    }

    /// Every kept record, oldest first, removed in the same lock section: a reader that drains
    /// periodically sees each record exactly once and never hits the capacity.
    pub(crate) fn take(&self) -> Vec<T> {
        self.lock().drain(..).collect()
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<T>> {
        // Every section leaves the deque whole, so a poisoned lock is still consistent.
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_records_up_to_capacity() {
        let journal = Journal::new();
        for n in 0..CAPACITY + 3 {
            journal.push(n);
        }
        let records = journal.snapshot();
        assert_eq!(records.len(), CAPACITY);
        assert_eq!(records.first(), Some(&3));
        journal.clear();
        assert!(journal.snapshot().is_empty());
    }

    #[test]
    fn take_returns_each_record_once() {
        let journal = Journal::new();
        journal.push(1);
        journal.push(2);
        assert_eq!(journal.take(), vec![1, 2]);
        journal.push(3);
        assert_eq!(journal.take(), vec![3]);
        assert!(journal.take().is_empty());
    }
}
