//! The server's shared state, and the one place that owns each piece of it.
//!
//! Configuration that changes on reload lives in one `ArcSwap<Runtime>`, swapped atomically: a
//! request loads it once and sees one consistent version throughout. Provider health is mutable
//! on every attempt, so it lives apart, behind a std mutex (sections are a few map operations and
//! never span an `.await`), and is carried over by provider id when the runtime is swapped. The
//! retry budget is its own state beside it, carried over with its balance.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::ArcSwap;
use rand::SeedableRng;
use rand::rngs::StdRng;
use secrecy::ExposeSecret;
use switchboard_core::ProviderId;
use switchboard_core::budget::RetryBudget;
use switchboard_core::health::HealthBook;
use switchboard_core::route::RouteTable;
use switchboard_core::switch::OperatorSwitches;
use switchboard_providers::SharedProvider;

use crate::callbacks::SentMessages;
use crate::config::{DeliverySettings, OktaSettings, OverloadSettings, Settings};
use crate::ledger::Ledger;
use crate::metrics::Metrics;
use crate::phone::PhoneHasher;

/// What a reload replaces.
#[derive(Debug)]
pub(crate) struct Runtime {
    pub(crate) okta: OktaSettings,
    /// When to shed hook requests.
    pub(crate) overload: OverloadSettings,
    /// `{public_base_url}/callbacks`, when configured.
    pub(crate) callback_base: Option<String>,
    pub(crate) delivery: DeliverySettings,
    /// Its counters carry over a reload wherever a limit's quota is unchanged.
    pub(crate) guard: crate::guard::Guard,
    pub(crate) sms_text: Option<switchboard_core::text::TemplateSet>,
    /// Checks `Authorization: Bearer` for the admin API; `None` turns the API off.
    pub(crate) admin_auth: Option<crate::auth::HeaderSecretAuth>,
    /// Files read through `${file:...}`.
    pub(crate) secret_files: Vec<std::path::PathBuf>,
    pub(crate) routes: RouteTable,
    pub(crate) providers: HashMap<ProviderId, SharedProvider>,
}

/// State shared by every handler.
#[derive(Debug)]
pub(crate) struct Shared {
    runtime: ArcSwap<Runtime>,
    health: Mutex<HealthBook>,
    /// The retry budget for speculative sends. Locked after `health` when both are held.
    budget: Mutex<RetryBudget>,
    /// The operator's switch per provider. Locked after `health` and `budget` when held with
    /// them.
    switches: Mutex<OperatorSwitches>,
    pub(crate) metrics: Metrics,
    pub(crate) phones: PhoneHasher,
    pub(crate) ledger: Ledger,
    /// Accepted messages, for matching delivery receipts.
    pub(crate) sent: SentMessages,
    /// Today's spending, for the guard's caps; survives reloads.
    pub(crate) spend: crate::guard::SpendMeter,
    /// Every delivery task, so shutdown can wait for those still running.
    pub(crate) tracker: tokio_util::task::TaskTracker,
    /// Hook requests awaiting answers and deliveries running, for admission control.
    pub(crate) load: crate::overload::Load,
    is_draining: AtomicBool,
    /// The configuration file, when the server was started from one.
    source: Mutex<Option<std::path::PathBuf>>,
    /// Randomness for planning (exploration). Seeded from the OS unless a caller that replays
    /// traffic (the simulator, tests) fixes the seed. A std mutex: one draw per plan, never
    /// across an `.await`.
    rng: Mutex<StdRng>,
}

impl Shared {
    pub(crate) fn new(settings: Settings) -> Shared {
        let phones = match &settings.logging.phone_hash_key {
            Some(key) => PhoneHasher::new(key.expose_secret().as_bytes()),
            None => PhoneHasher::random(),
        };
        let health = HealthBook::new(settings.health.clone());
        let budget = RetryBudget::new(settings.health.budget().clone());
        let ledger = Ledger::new(settings.delivery.ledger_capacity);
        let sent = SentMessages::new(settings.delivery.ledger_capacity);
        Shared {
            runtime: ArcSwap::from_pointee(Runtime::from_settings(settings)),
            health: Mutex::new(health),
            budget: Mutex::new(budget),
            switches: Mutex::new(OperatorSwitches::new()),
            metrics: Metrics::new(),
            phones,
            ledger,
            sent,
            spend: crate::guard::SpendMeter::default(),
            tracker: tokio_util::task::TaskTracker::new(),
            load: crate::overload::Load::default(),
            is_draining: AtomicBool::new(false),
            source: Mutex::new(None),
            rng: Mutex::new(StdRng::from_os_rng()),
        }
    }

    /// The planning RNG. A panic while drawing cannot leave it in a state that matters.
    pub(crate) fn rng(&self) -> MutexGuard<'_, StdRng> {
        self.rng.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn seed_rng(&self, seed: u64) {
        *self.rng() = StdRng::seed_from_u64(seed);
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
        *health = health.carry_over(settings.health.clone(), providers.iter());
        {
            let mut budget = self.budget();
            *budget = budget.carry_over(settings.health.budget().clone());
        }
        {
            let mut switches = self.switches();
            *switches = switches.carry_over(providers.iter());
        }
        let mut runtime = Runtime::from_settings(settings);
        // Keep the fetched Okta signing keys: refetching is wasted, and during a JWKS outage it
        // would fail every valid token until Okta is back.
        let previous = self.runtime.load();
        runtime.okta.auth = runtime.okta.auth.keeping_keys_of(&previous.okta.auth);
        // And the guard's counters, or every reload would reset what a pumping campaign used.
        runtime.guard.keep_counters_of(&previous.guard);
        // Swap while holding the health lock so no attempt records into the old book after
        // the new runtime is visible.
        self.runtime.store(Arc::new(runtime));
    }

    /// Locks provider health. A panic while holding the lock cannot leave the book half
    /// updated in a way that matters more than losing it, so poisoning is ignored.
    pub(crate) fn health(&self) -> MutexGuard<'_, HealthBook> {
        self.health.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Locks the retry budget; after `health` when both are held. Poisoning is ignored, as for
    /// health.
    pub(crate) fn budget(&self) -> MutexGuard<'_, RetryBudget> {
        self.budget.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Locks the operator's switches; after `health` and `budget` when held with them.
    /// Poisoning is ignored, as for health.
    pub(crate) fn switches(&self) -> MutexGuard<'_, OperatorSwitches> {
        self.switches.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn set_source(&self, path: std::path::PathBuf) {
        *self.source.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(path);
    }

    fn source(&self) -> Option<std::path::PathBuf> {
        self.source.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Re-reads and validates the configuration file, then swaps it in. On any error the
    /// running configuration stays; the error (naming the key) is logged, counted and returned.
    pub(crate) fn reload_from_source(&self) -> Result<(), String> {
        let Some(path) = self.source() else {
            return Err("the server was not started from a configuration file".into());
        };
        match Settings::load(&path) {
            Ok(settings) => {
                let old_path = self.runtime().okta.path.clone();
                if settings.okta.path != old_path {
                    tracing::warn!(old = %old_path, new = %settings.okta.path, "okta.path changes take effect on restart");
                }
                self.reload(settings);
                self.metrics.config_reload(true);
                tracing::info!(config = %path.display(), "configuration reloaded");
                Ok(())
            }
            Err(error) => {
                self.metrics.config_reload(false);
                tracing::error!(config = %path.display(), %error, "configuration refused; the running configuration stays");
                Err(error.to_string())
            }
        }
    }

    /// Modification times of the configuration file and its secret files.
    pub(crate) fn source_fingerprint(&self) -> Vec<Option<std::time::SystemTime>> {
        let mut paths: Vec<std::path::PathBuf> = self.source().into_iter().collect();
        paths.extend(self.runtime().secret_files.iter().cloned());
        paths.iter().map(|path| std::fs::metadata(path).and_then(|m| m.modified()).ok()).collect()
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
            overload: settings.overload,
            callback_base: settings.public_base_url.map(|base| format!("{base}/callbacks")),
            delivery: settings.delivery,
            guard: settings.guard,
            sms_text: settings.sms_text,
            admin_auth: settings.admin_auth,
            secret_files: settings.secret_files,
            routes: settings.routes,
            providers,
        }
    }
}
