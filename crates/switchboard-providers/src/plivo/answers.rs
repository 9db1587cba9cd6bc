//! The call scripts waiting for Plivo to fetch them from the answer URL.
//!
//! Plivo has no inline call XML: a call names an `answer_url` that Plivo fetches when the callee
//! picks up. switchboard serves it itself, from memory, at `{callback_base}/answer/{token}`:
//! the token is 256 random bits (unguessable, so the URL grants the fetch together with Plivo's
//! signature), an entry is removed by its first signed fetch or when it expires, and the book
//! holds at most a configured number of entries so a flood of calls cannot grow memory without
//! bound. A script is never evicted to make room: that would silence a call in progress.
//!
//! Time is passed in, so expiry is tested without waiting.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use rand::RngCore;
use switchboard_core::MessageText;

/// Bounded, expiring token -> call XML.
///
/// A std mutex: every section is a map operation and never spans an `.await`.
#[derive(Debug)]
pub(crate) struct AnswerBook {
    entries: Mutex<HashMap<String, Entry>>,
    ttl: Duration,
    capacity: usize,
}

#[derive(Debug)]
struct Entry {
    /// The call XML; it holds the passcode, so `Debug` redacts it.
    xml: MessageText,
    expires_at: Instant,
}

/// The book is full of unexpired scripts.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Full;

impl AnswerBook {
    pub(crate) fn new(ttl: Duration, capacity: usize) -> AnswerBook {
        AnswerBook { entries: Mutex::new(HashMap::new()), ttl, capacity }
    }

    /// Stores `xml` under a new random token and returns the token.
    pub(crate) fn insert(&self, xml: MessageText, now: Instant) -> Result<String, Full> {
        let token = new_token();
        let mut entries = self.lock();
        if entries.len() >= self.capacity {
            entries.retain(|_, entry| entry.expires_at > now);
            if entries.len() >= self.capacity {
                return Err(Full);
            }
        }
        entries.insert(token.clone(), Entry { xml, expires_at: now + self.ttl });
        Ok(token)
    }

    /// Whether `token` names an unexpired script (does not consume it).
    #[cfg(test)]
    pub(crate) fn contains(&self, token: &str, now: Instant) -> bool {
        self.lock().get(token).is_some_and(|entry| entry.expires_at > now)
    }

    /// Removes and returns the script for `token`, unless it is unknown or expired.
    pub(crate) fn take(&self, token: &str, now: Instant) -> Option<MessageText> {
        let entry = self.lock().remove(token)?;
        (entry.expires_at > now).then_some(entry.xml)
    }

    /// Forgets `token` (a send that failed leaves no script behind).
    pub(crate) fn remove(&self, token: &str) {
        self.lock().remove(token);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // Sections insert or remove whole entries: a poisoned map is still consistent.
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// 32 random bytes from the thread's CSPRNG, URL-safe base64 (43 characters).
fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xml(text: &str) -> MessageText {
        MessageText::new(text.to_owned())
    }

    #[test]
    fn a_script_is_served_once() {
        let book = AnswerBook::new(Duration::from_secs(60), 10);
        let now = Instant::now();
        let token = book.insert(xml("<Response/>"), now).unwrap();
        assert_eq!(token.len(), 43);
        assert!(book.contains(&token, now));
        assert_eq!(book.take(&token, now).unwrap().expose(), "<Response/>");
        assert!(book.take(&token, now).is_none());
        assert!(!book.contains(&token, now));
    }

    #[test]
    fn scripts_expire() {
        let book = AnswerBook::new(Duration::from_secs(60), 10);
        let now = Instant::now();
        let token = book.insert(xml("x"), now).unwrap();
        assert!(book.take(&token, now + Duration::from_secs(60)).is_none());
        assert_eq!(book.len(), 0, "an expired fetch still removes the entry");
    }

    #[test]
    fn capacity_is_bounded_and_expired_entries_make_room() {
        let book = AnswerBook::new(Duration::from_secs(60), 2);
        let now = Instant::now();
        let first = book.insert(xml("1"), now).unwrap();
        book.insert(xml("2"), now).unwrap();
        assert_eq!(book.insert(xml("3"), now), Err(Full));
        assert!(book.contains(&first, now), "nothing live is evicted");
        let later = now + Duration::from_secs(61);
        book.insert(xml("3"), later).unwrap();
        assert_eq!(book.len(), 1);
    }

    #[test]
    fn tokens_are_unique_and_url_safe() {
        let tokens: std::collections::HashSet<String> = (0..1000).map(|_| new_token()).collect();
        assert_eq!(tokens.len(), 1000);
        assert!(
            tokens
                .iter()
                .all(|t| t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        );
    }
}
