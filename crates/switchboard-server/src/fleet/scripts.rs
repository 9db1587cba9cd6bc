//! Plivo's call scripts, shared: Plivo fetches a call's answer URL from whichever replica the
//! load balancer picks, so the replica that placed the call keeps the script in Redis too.
//!
//! A script holds the passcode, so Redis never sees it in clear, nor anything that would open
//! it: the URL's token (256 random bits, known only to Plivo and the replica that placed the
//! call) is never written. The entry is `{p}plivo:answer:<SHA-256(token)>`, its value the script
//! sealed with ChaCha20-Poly1305 under a key derived from the token (SHA-256 of a label and the
//! token: a different digest from the entry's name), a random nonce before it. The entry lives
//! as long as the script may be fetched (`answer_ttl_s`) and is taken with `GETDEL`: one fetch,
//! fleet-wide. It is written before the call is placed, on the hook path's timeout
//! (`command_timeout_ms`), and the adapter then keeps no copy of its own: a script is in one
//! place only.
//!
//! When Redis is slow or down the script stays in its replica's own book only: a fetch that
//! lands on another replica finds nothing, answered 404, and Plivo's call fails (fail closed;
//! counted in `switchboard_state_fallbacks_total{store="plivo"}`).

use std::sync::Arc;
use std::time::Duration;

use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use sha2::{Digest, Sha256};
use switchboard_core::MessageText;
use switchboard_providers::SharedScripts;

use super::{Path, Redis};

/// The store's name in keys and metrics.
const STORE: &str = "plivo";

/// Plivo's call scripts in Redis, sealed.
#[derive(Debug)]
pub(crate) struct RedisScripts {
    redis: Arc<Redis>,
}

impl RedisScripts {
    pub(crate) fn new(redis: Arc<Redis>) -> RedisScripts {
        RedisScripts { redis }
    }

    fn entry(&self, token: &str) -> String {
        self.redis.key(STORE, &["answer", &hex::encode(Sha256::digest(token.as_bytes()))])
    }
}

/// The sealing key of `token`'s script.
fn sealing_key(token: &str) -> LessSafeKey {
    let mut hasher = Sha256::new();
    hasher.update(b"switchboard plivo answer key\0");
    hasher.update(token.as_bytes());
    let key = UnboundKey::new(&CHACHA20_POLY1305, &hasher.finalize())
        .expect("a SHA-256 digest is a ChaCha20-Poly1305 key");
    LessSafeKey::new(key)
}

/// `nonce || ciphertext || tag`; the entry's name is the associated data, so a value moved to
/// another entry does not open.
fn seal(token: &str, entry: &str, script: &MessageText) -> Vec<u8> {
    let nonce_bytes: [u8; NONCE_LEN] = rand::random();
    let mut sealed = script.expose().as_bytes().to_vec();
    sealing_key(token)
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce_bytes),
            Aad::from(entry.as_bytes()),
            &mut sealed,
        )
        .expect("a script is far below ChaCha20-Poly1305's limit");
    let mut value = nonce_bytes.to_vec();
    value.append(&mut sealed);
    value
}

fn open(token: &str, entry: &str, mut value: Vec<u8>) -> Option<MessageText> {
    if value.len() < NONCE_LEN {
        return None;
    }
    let mut sealed = value.split_off(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(&value).ok()?;
    let plain =
        sealing_key(token).open_in_place(nonce, Aad::from(entry.as_bytes()), &mut sealed).ok()?;
    String::from_utf8(plain.to_vec()).ok().map(MessageText::new)
}

#[async_trait::async_trait]
impl SharedScripts for RedisScripts {
    async fn keep(&self, token: &str, script: &MessageText, ttl: Duration) -> bool {
        let entry = self.entry(token);
        let value = seal(token, &entry, script);
        let mut command = redis::cmd("SET");
        command.arg(entry).arg(value).arg("PX").arg(ttl.as_millis().max(1) as u64);
        // On the hook's path (the call is placed after it): its short timeout.
        match self.redis.query::<()>(STORE, Path::Hook, &command).await {
            Ok(()) => true,
            Err(why) => {
                // Only this replica can serve the call's script now.
                self.redis.fell_back(STORE, why);
                false
            }
        }
    }

    async fn take(&self, token: &str) -> Option<MessageText> {
        let entry = self.entry(token);
        let mut command = redis::cmd("GETDEL");
        command.arg(&entry);
        match self.redis.query::<Option<Vec<u8>>>(STORE, Path::Background, &command).await {
            Ok(value) => open(token, &entry, value?),
            Err(why) => {
                self.redis.fell_back(STORE, why);
                None
            }
        }
    }

    fn forget(&self, token: &str) {
        let entry = self.entry(token);
        let redis = Arc::clone(&self.redis);
        tokio::spawn(async move {
            let mut command = redis::cmd("DEL");
            command.arg(entry);
            if let Err(why) = redis.query::<i64>(STORE, Path::Background, &command).await {
                // The entry expires by itself; until then a second fetch elsewhere could be
                // served (Plivo fetches once).
                redis.fell_back(STORE, why);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_script_opens_only_with_its_token_and_entry() {
        let script =
            MessageText::new("<Response><Speak>Your code is 4 8 2 9 1 5</Speak></Response>".into());
        let value = seal("token-a", "entry-a", &script);
        assert!(!String::from_utf8_lossy(&value).contains("4 8 2 9 1 5"));
        assert!(!value.windows(7).any(|w| w == b"token-a"));
        let opened = open("token-a", "entry-a", value.clone()).unwrap();
        assert_eq!(opened.expose(), script.expose());
        assert!(open("token-b", "entry-a", value.clone()).is_none(), "another token");
        assert!(open("token-a", "entry-b", value.clone()).is_none(), "moved to another entry");
        let mut tampered = value;
        *tampered.last_mut().unwrap() ^= 1;
        assert!(open("token-a", "entry-a", tampered).is_none());
        assert!(open("token-a", "entry-a", vec![0; 4]).is_none());
    }
}
