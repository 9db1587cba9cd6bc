//! An emulator of Vonage's SMS API (`POST /sms/json`, `GET /account/get-balance`) and Voice API
//! (`POST /v1/calls`, `GET /v1/calls`): Vonage's auth (api_key with api_secret or a `sig`; an
//! RS256 application JWT checked against the application's public key), required parameters
//! and limits as `sms.yml`, the Voice spec and `ncco-schema.json` state, success and error
//! bodies as Vonage sends them (SMS errors inside HTTP 200), the shared faults, and signed
//! delivery receipts and call events posted to the URLs the sends name.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use switchboard_sim::vonage::{VonageAccount, VonageEmulator, TEST_PUBLIC_KEY_PEM};
//! use switchboard_sim::Receipts;
//!
//! let account = VonageAccount::new("abcd1234", "s3cret")
//!     .with_signature_secret("sig-secret")
//!     .with_application("aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab", TEST_PUBLIC_KEY_PEM);
//! let vonage = VonageEmulator::start(account).await?;
//! vonage.set_receipts(Receipts::delivered());
//! // point an adapter's sms_base_url and voice_base_url at vonage.base_url() ...
//! # Ok(()) }
//! ```
//!
//! Files: `api` (the routes, and the wire behaviour in its docs), `sms` (the SMS API and its
//! receipts), `voice` (the Voice API, its JWT check and call events); this module holds the
//! account and what the journal records.

mod api;
mod sms;
mod voice;

use std::fmt;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::callbacks::Receipts;
use crate::emulator::{Emulator, Running};

/// A 2048-bit RSA private key for tests and the demo (never for a real application).
pub const TEST_PRIVATE_KEY_PEM: &str = include_str!("../../testdata/vonage-test-private-key.pem");
/// The public half of [`TEST_PRIVATE_KEY_PEM`].
pub const TEST_PUBLIC_KEY_PEM: &str = include_str!("../../testdata/vonage-test-public-key.pem");

/// How the account's signature secret signs (the dashboard setting).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureMethod {
    /// `md5(params + secret)`.
    Md5Hash,
    /// HMAC-MD5.
    Md5,
    /// HMAC-SHA1.
    Sha1,
    /// HMAC-SHA256.
    Sha256,
    /// HMAC-SHA512.
    Sha512,
}

/// The credentials the emulator accepts.
#[derive(Clone, PartialEq, Eq)]
pub struct VonageAccount {
    /// The API key.
    pub api_key: String,
    /// The API secret.
    pub api_secret: String,
    /// The signature secret; `None` refuses signed requests and sends receipts unsigned.
    pub signature_secret: Option<String>,
    /// How the signature secret signs.
    pub signature_method: SignatureMethod,
    /// The Voice application id the JWT must name.
    pub application_id: Option<String>,
    /// The application's public key (PEM) the JWT must verify with.
    pub public_key_pem: Option<String>,
}

impl VonageAccount {
    /// An SMS-only account with these credentials.
    pub fn new(api_key: impl Into<String>, api_secret: impl Into<String>) -> VonageAccount {
        VonageAccount {
            api_key: api_key.into(),
            api_secret: api_secret.into(),
            signature_secret: None,
            signature_method: SignatureMethod::Md5Hash,
            application_id: None,
            public_key_pem: None,
        }
    }

    /// Adds a signature secret (`md5hash`).
    #[must_use]
    pub fn with_signature_secret(self, secret: impl Into<String>) -> VonageAccount {
        VonageAccount { signature_secret: Some(secret.into()), ..self }
    }

    /// Changes how the signature secret signs.
    #[must_use]
    pub fn with_signature_method(self, method: SignatureMethod) -> VonageAccount {
        VonageAccount { signature_method: method, ..self }
    }

    /// Adds a Voice application.
    #[must_use]
    pub fn with_application(
        self,
        application_id: impl Into<String>,
        public_key_pem: impl Into<String>,
    ) -> VonageAccount {
        VonageAccount {
            application_id: Some(application_id.into()),
            public_key_pem: Some(public_key_pem.into()),
            ..self
        }
    }
}

impl fmt::Debug for VonageAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VonageAccount")
            .field("api_key", &self.api_key)
            .field("api_secret", &"***")
            .field("signature_secret", &self.signature_secret.as_ref().map(|_| "***"))
            .field("signature_method", &self.signature_method)
            .field("application_id", &self.application_id)
            .finish_non_exhaustive()
    }
}

/// Which API a send went to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SendKind {
    /// `POST /sms/json`.
    Sms,
    /// `POST /v1/calls`.
    Call,
}

// Per-provider record, alike in shape across emulators on purpose: its fields are this
// provider's wire format.
/// One send the emulator received, recorded before auth, validation and faults are applied.
#[derive(Clone, Debug, Serialize)]
pub struct ReceivedSend {
    /// SMS or call.
    pub kind: SendKind,
    /// Whether the credentials (secret, `sig` or JWT) verified.
    pub is_authenticated: bool,
    /// `to` (SMS) or the first phone leg's `number` (calls).
    pub to: Option<String>,
    /// `from` (SMS) or `from.number` (calls).
    pub from: Option<String>,
    /// `text` (SMS) or the first talk action's `text` (calls).
    pub text: Option<String>,
    /// Every SMS form parameter, in the order sent (empty for calls).
    pub params: Vec<(String, String)>,
    /// The JSON body of a call (`Null` for SMS).
    pub body: serde_json::Value,
    /// The `Content-Type` the request carried.
    pub content_type: Option<String>,
    /// When the request was read.
    #[serde(serialize_with = "crate::serialize_rfc3339")]
    pub received_at: SystemTime,
}

impl ReceivedSend {
    /// The first value of SMS form parameter `name`.
    #[must_use]
    pub fn param(&self, name: &str) -> Option<&str> {
        crate::request::first_param(&self.params, name)
    }
}

/// A Vonage emulator: cheap to clone, every clone shares faults, receipts and the record.
pub type VonageEmulator = Emulator<Vonage>;

/// A Vonage emulator serving on a loopback port (use its base URL as the adapter's
/// `sms_base_url` and `voice_base_url`); stops on shutdown or drop.
pub type RunningEmulator = Running<Vonage>;

// Receipts report an `err-code` for SMS and a call status (such as `busy`) for calls.
crate::callbacks::callback_emulator! {
    /// Vonage's half of a [`VonageEmulator`]: the account and the receipts it posts.
    pub struct Vonage { account: VonageAccount, receipts: Receipts::none() }
    received = ReceivedSend, routes = api::routes;
}

impl VonageEmulator {
    /// A message id like Vonage's (`0A0000000123ABCD1`: `0A` and 15 upper-case hex digits).
    fn new_message_id(&self) -> String {
        let value = self.random_u128() & ((1 << 60) - 1);
        format!("0A{value:015X}")
    }
}
