//! Provider adapters: the only code in switchboard that knows a provider's wire format.
//!
//! Each provider lives in its own folder (config, request builder, response classifier, client).
//! An adapter turns an [`OutboundMessage`] into the provider's HTTP request and the provider's
//! answer into an [`AttemptOutcome`]-compatible result, classifying every failure into the
//! shared [`ErrorClass`]es. Adapters never log or return a passcode, a message body or a
//! credential: error details are built from status codes and provider error codes only.
//!
//! [`AttemptOutcome`]: switchboard_core::AttemptOutcome
//! [`ErrorClass`]: switchboard_core::ErrorClass

pub mod aws;
pub mod callback;
mod error;
mod fields;
mod http;
pub mod infobip;
pub mod plivo;
mod refusal;
mod secret;
pub mod senders;
pub mod sinch;
pub mod telesign;
#[cfg(test)]
mod testing;
mod throughput;
pub mod twilio;
mod url;
pub mod vonage;
pub mod webhook;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use switchboard_core::{Channel, ConfigError, OutboundMessage, ProviderId};

pub use aws::{AwsSmsVoice, AwsSmsVoiceConfig};
pub use callback::{
    BuildContext, Callback, CallbackError, CallbackReply, DeliveryState, Receipt, SharedScripts,
};
pub use error::ProviderError;
pub use infobip::{Infobip, InfobipConfig};
pub use plivo::{Plivo, PlivoConfig};
pub use senders::{CountrySenderConfig, Senders};
pub use sinch::{Sinch, SinchConfig};
pub use telesign::{Telesign, TelesignConfig};
pub use twilio::{Twilio, TwilioConfig};
pub use vonage::{Vonage, VonageConfig};
pub use webhook::{ReceiptConfig, Webhook, WebhookConfig};

/// A provider's acceptance of one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// The provider's id for the message or call (Twilio `SM…`/`CA…`).
    pub message_id: String,
}

/// One configured provider account.
///
/// A small object-safe trait, held as `Arc<dyn Provider>`: the server and the core never see
/// which provider they are talking to.
#[async_trait]
pub trait Provider: Send + Sync + fmt::Debug {
    /// The operator's id for this account.
    fn id(&self) -> &ProviderId;

    /// The provider's kind as written in config (`twilio`); also the `provider` Okta is told.
    fn kind(&self) -> &'static str;

    /// Whether this account can deliver on `channel`.
    fn supports(&self, channel: Channel) -> bool;

    /// Sends one message. Must not retry on its own: retries and failover belong to dispatch.
    ///
    /// The caller bounds the call with its own deadline and treats a cancelled future as a
    /// timeout; `send` itself also enforces the provider's configured per-request timeout.
    async fn send(&self, message: &OutboundMessage) -> Result<Accepted, ProviderError>;

    /// A cheap check that the API is reachable and the credentials work. Never sends a message.
    async fn probe(&self) -> Result<(), ProviderError>;

    /// Handles a request the provider made to `{callback_base}{subpath}`: verifies its
    /// signature, then parses receipts or serves content. Providers without callbacks keep the
    /// default, which refuses.
    async fn handle_callback(&self, callback: &Callback) -> Result<CallbackReply, CallbackError> {
        let _ = callback;
        Err(CallbackError::Unsupported)
    }

    /// Hands the adapter the server's shared store for content the provider fetches from us
    /// (replicas behind a load balancer); only adapters that serve such content keep it.
    fn share_scripts(&self, scripts: std::sync::Arc<dyn SharedScripts>) {
        let _ = scripts;
    }
}

/// The two [`Provider`] methods every adapter answers the same way: `id()` from its `id` field
/// and `kind()` from the registry's `KIND`. Used inside each adapter's `impl Provider`.
macro_rules! provider_identity {
    () => {
        fn id(&self) -> &switchboard_core::ProviderId {
            &self.id
        }

        fn kind(&self) -> &'static str {
            Self::KIND
        }
    };
}
pub(crate) use provider_identity;

/// A shared provider handle.
pub type SharedProvider = Arc<dyn Provider>;

/// The registry of provider kinds: one line per provider. From it [`kinds!`] generates the
/// [`ProviderConfig`] enum (serde tag `kind`), [`ProviderConfig::kind`],
/// [`ProviderConfig::validate`], [`ProviderConfig::KINDS`], each adapter's `KIND` and [`build`].
///
/// Each line is `Variant("kind", ConfigType, AdapterType)`, with the kind's doc line above it.
/// The config type has `validate(&self, key_prefix)`; the adapter has the kit's constructor
/// `try_new(id, &config, &BuildContext)` and implements [`Provider`].
macro_rules! kinds {
    ($( $(#[doc = $doc:literal])* $variant:ident($kind:literal, $config:ty, $adapter:ty), )*) => {
        /// One `[providers.NAME]` table: `kind` picks the adapter, the other keys are its config.
        ///
        /// Unknown keys are refused: the inner structs' `deny_unknown_fields` holds through
        /// serde's internally tagged representation (tested below), so a typo such as
        /// `auth_tokn` is an error.
        #[derive(Clone, Debug, Deserialize)]
        #[serde(tag = "kind")]
        pub enum ProviderConfig {
            $( $(#[doc = $doc])* #[serde(rename = $kind)] $variant($config), )*
        }

        impl ProviderConfig {
            /// Every kind, as written in config, in registry order.
            pub const KINDS: &'static [&'static str] = &[$($kind),*];

            /// The `kind` as written in config.
            #[must_use]
            pub fn kind(&self) -> &'static str {
                match self {
                    $( ProviderConfig::$variant(_) => $kind, )*
                }
            }

            /// The account's throughput cap (`max_per_second`), when one is set.
            #[must_use]
            pub fn max_per_second(&self) -> Option<std::num::NonZeroU32> {
                match self {
                    $( ProviderConfig::$variant(config) => config.max_per_second(), )*
                }
            }

            /// The throughput caps of the provider's per-country senders, by country.
            #[must_use]
            pub fn sender_caps(
                &self,
            ) -> std::collections::BTreeMap<switchboard_core::Country, std::num::NonZeroU32> {
                match self {
                    $( ProviderConfig::$variant(config) => config.sender_caps(), )*
                }
            }

            /// Checks the provider's settings; errors name keys under `key_prefix`
            /// (`providers.NAME`).
            pub fn validate(&self, key_prefix: &str) -> Result<(), ConfigError> {
                match self {
                    $( ProviderConfig::$variant(config) => config.validate(key_prefix), )*
                }
            }
        }

        $(
            impl $adapter {
                /// The kind as written in config: the registry line is its only spelling.
                pub const KIND: &'static str = $kind;
            }
        )*

        /// Validates `config` and builds the adapter for provider `id`.
        pub fn build(
            id: ProviderId,
            config: &ProviderConfig,
            context: &BuildContext,
        ) -> Result<SharedProvider, ConfigError> {
            match config {
                $( ProviderConfig::$variant(config) => {
                    Ok(Arc::new(<$adapter>::try_new(id, config, context)?))
                } )*
            }
        }
    };
}

kinds! {
    /// Twilio Programmable Messaging and Voice.
    Twilio("twilio", TwilioConfig, Twilio),
    /// AWS End User Messaging SMS and Voice v2 (no callbacks: delivery events go to the
    /// configuration set's destinations).
    AwsSmsVoice("aws_sms_voice", AwsSmsVoiceConfig, AwsSmsVoice),
    /// A generic JSON webhook (an in-house gateway).
    Webhook("webhook", WebhookConfig, Webhook),
    /// Vonage SMS API and Voice API.
    Vonage("vonage", VonageConfig, Vonage),
    /// Sinch SMS (xms batches) and Voice callouts.
    Sinch("sinch", SinchConfig, Sinch),
    /// Telesign Messaging and Voice.
    Telesign("telesign", TelesignConfig, Telesign),
    /// Infobip SMS and voice (text to speech).
    Infobip("infobip", InfobipConfig, Infobip),
    /// Plivo Messaging and Voice.
    Plivo("plivo", PlivoConfig, Plivo),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Providers {
        providers: std::collections::BTreeMap<String, ProviderConfig>,
    }

    const TWILIO: &str = r#"
        [providers.twilio-us]
        kind = "twilio"
        account_sid = "AC0123456789abcdef0123456789abcdef"
        auth_token = "secret-token"
        from = "+15005550006"
    "#;

    #[test]
    fn parses_a_tagged_provider_table() {
        let parsed: Providers = toml::from_str(TWILIO).unwrap();
        let config = &parsed.providers["twilio-us"];
        assert_eq!(config.kind(), "twilio");
        assert!(config.validate("providers.twilio-us").is_ok());
        let ProviderConfig::Twilio(twilio) = config else { panic!("{config:?}") };
        assert_eq!(twilio.timeout_ms, 1200);
        assert!(!format!("{config:?}").contains("secret-token"));
    }

    #[test]
    fn every_kind_takes_a_throughput_cap_checked_by_name() {
        let parsed: Providers = toml::from_str(&format!("{TWILIO}max_per_second = 30\n")).unwrap();
        let config = &parsed.providers["twilio-us"];
        assert_eq!(config.max_per_second().map(std::num::NonZeroU32::get), Some(30));
        assert!(config.validate("providers.twilio-us").is_ok());
        let parsed: Providers = toml::from_str(TWILIO).unwrap();
        assert_eq!(parsed.providers["twilio-us"].max_per_second(), None, "no cap unless set");
        for bad in [0, 10_001] {
            let parsed: Providers =
                toml::from_str(&format!("{TWILIO}max_per_second = {bad}\n")).unwrap();
            let error = parsed.providers["twilio-us"].validate("providers.twilio-us").unwrap_err();
            assert!(
                error.to_string().starts_with("providers.twilio-us.max_per_second: "),
                "{error}"
            );
        }
    }

    #[test]
    fn unknown_keys_are_refused_through_the_tag() {
        let typo = format!("{TWILIO}auth_tokn = \"x\"\n");
        let error = toml::from_str::<Providers>(&typo).unwrap_err().to_string();
        assert!(error.contains("auth_tokn"), "{error}");
        let unknown_kind = TWILIO.replace("\"twilio\"", "\"carrier-pigeon\"");
        assert!(toml::from_str::<Providers>(&unknown_kind).is_err());
        let missing_kind = TWILIO.replace("kind = \"twilio\"", "");
        assert!(toml::from_str::<Providers>(&missing_kind).is_err());
    }

    #[test]
    fn the_registry_lists_every_kind_once() {
        let mut kinds = ProviderConfig::KINDS.to_vec();
        assert_eq!(kinds.len(), 8);
        kinds.sort_unstable();
        kinds.dedup();
        assert_eq!(kinds.len(), ProviderConfig::KINDS.len());
    }

    #[tokio::test]
    async fn builds_a_provider_that_names_its_channels() {
        let parsed: Providers = toml::from_str(TWILIO).unwrap();
        let id = ProviderId::parse("twilio-us").unwrap();
        let provider =
            build(id.clone(), &parsed.providers["twilio-us"], &BuildContext::default()).unwrap();
        assert_eq!((provider.id(), provider.kind()), (&id, "twilio"));
        assert!(provider.supports(Channel::Sms) && provider.supports(Channel::Voice));

        let alphanumeric = TWILIO.replace("+15005550006", "Acme");
        let parsed: Providers = toml::from_str(&alphanumeric).unwrap();
        let provider =
            build(id.clone(), &parsed.providers["twilio-us"], &BuildContext::default()).unwrap();
        assert!(provider.supports(Channel::Sms) && !provider.supports(Channel::Voice));

        let bad = TWILIO.replace("AC0123", "XX0123");
        let parsed: Providers = toml::from_str(&bad).unwrap();
        let error = build(id, &parsed.providers["twilio-us"], &BuildContext::default())
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("providers.twilio-us.account_sid: "), "{error}");
    }
    /// The commented Vonage and Sinch tables in `config/example.toml`, uncommented: every key
    /// line (`# key = value`, `# [table]`) of the block that starts at `# [providers.{id}]`.
    fn example_block(id: &str) -> String {
        let example = include_str!("../../../config/example.toml");
        let start = example.find(&format!("# [providers.{id}]")).expect("example documents it");
        example[start..]
            .lines()
            .take_while(|line| line.starts_with('#'))
            .filter_map(|line| line.strip_prefix("# "))
            .filter(|line| {
                line.starts_with('[')
                    || line.split_once(" = ").is_some_and(|(key, _)| {
                        key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                    })
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// "Adding a provider" (ARCHITECTURE.md) ends with its documentation: whatever the registry
    /// lists, `config/example.toml` shows a table of and README.md's provider table has a row for.
    #[test]
    fn every_registered_kind_is_documented() {
        let example = include_str!("../../../config/example.toml");
        let readme = include_str!("../../../README.md");
        for kind in ProviderConfig::KINDS {
            assert!(
                example.contains(&format!("kind = \"{kind}\"")),
                "{kind}: no [providers.*] table with this kind in config/example.toml"
            );
            assert!(
                readme.contains(&format!("| `{kind}` |")),
                "{kind}: no row in README.md's provider table"
            );
        }
    }

    #[test]
    fn the_example_documents_every_vonage_and_sinch_key() {
        let vonage_keys = [
            "api_key",
            "api_secret",
            "signature_secret",
            "signature_method",
            "application_id",
            "private_key",
            "private_key_file",
            "from",
            "voice_from",
            "sms_base_url",
            "voice_base_url",
            "timeout_ms",
            "connect_timeout_ms",
            "sms_ttl_ms",
            "ringing_timer_s",
            "length_timer_s",
            "[providers.vonage-eu.senders.GB]",
        ];
        let sinch_keys = [
            "service_plan_id",
            "api_token",
            "application_key",
            "application_secret",
            "voice_auth",
            "callback_token",
            "from",
            "voice_from",
            "sms_base_url",
            "voice_base_url",
            "timeout_ms",
            "connect_timeout_ms",
        ];
        for (id, kind, keys) in
            [("vonage-eu", "vonage", &vonage_keys[..]), ("sinch-eu", "sinch", &sinch_keys[..])]
        {
            let block = example_block(id);
            for key in keys {
                let is_documented = block.lines().any(|line| {
                    line == *key || line.split_once(" = ").is_some_and(|(name, _)| name == *key)
                });
                assert!(is_documented, "{id}: {key} is not in config/example.toml");
            }
            // `${NAME}` stands for an environment variable the server substitutes first; and
            // `private_key` and `private_key_file` are alternatives the example shows both of.
            let block = block
                .replace("private_key_file = ", "# private_key_file = ")
                .split("${")
                .enumerate()
                .map(|(index, part)| match (index, part.split_once('}')) {
                    (0, _) | (_, None) => part.to_owned(),
                    (_, Some((_, rest))) => format!("c2VjcmV0dmFsdWUx{rest}"),
                })
                .collect::<String>();
            let parsed: Providers =
                toml::from_str(&block).unwrap_or_else(|e| panic!("{id}: {e}\n{block}"));
            let config = &parsed.providers[id];
            assert_eq!(config.kind(), kind);
            config.validate(&format!("providers.{id}")).unwrap();
        }
    }
}
