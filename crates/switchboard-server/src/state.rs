//! The server's shared state, and the one place that owns each piece of it.
//!
//! Configuration that changes on reload lives in one `ArcSwap<Runtime>`, swapped atomically: a
//! request loads it once and sees one consistent version throughout. Everything that changes
//! with traffic is a store of its own, in its own file, that outlives reloads:
//!
//! | store | file | what it keeps |
//! |---|---|---|
//! | [`HealthStore`] | `health.rs` | provider health per (provider, country, channel) |
//! | [`BudgetStore`] | `budget.rs` | the retry budget for speculative sends |
//! | [`SpendMeter`] | `spend.rs` | what sends cost, for the guard's daily caps and the budget's hourly ones |
//! | [`SwitchStore`] | `switches.rs` | the operator's switch per provider (enabled, draining, disabled) |
//! | [`ThroughputLimits`] | `throughput.rs` | each capped provider's sends in the last second |
//! | [`GuardLimits`] | `guard/limits.rs` | the fraud guard's velocity counters |
//! | [`Ledger`] | `ledger.rs` | Okta events seen, and each phone's last accepted send |
//! | [`SentMessages`] | `sent.rs` | accepted messages, for matching delivery receipts |
//! | [`ConversionStore`] | `conversions.rs` | accepted sends awaiting Okta's events, and the events seen |
//!
//! Each takes `now` (or the UTC day) and values, and returns values: no lock guard or reference
//! into a store leaves it, so a store shared between servers can replace one without touching
//! its callers. The few steps that need several stores at once are methods here
//! ([`Shared::plan`], [`Shared::begin_attempt`], [`Shared::reload`]); they lock in the order
//! health, budget, spend, switches. No store knows another, nor the request path.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arc_swap::ArcSwap;
use rand::SeedableRng;
use rand::rngs::StdRng;
use secrecy::ExposeSecret;
use switchboard_core::plan::{Candidate, Plan, RouteQuery, plan};
use switchboard_core::route::RouteTable;
use switchboard_core::{Admission, AttemptKind, ProviderId, begin_attempt};
use switchboard_providers::SharedProvider;

use crate::budget::BudgetStore;
use crate::clock::WallClock;
use crate::config::{DeliverySettings, OktaSettings, OverloadSettings, Settings};
use crate::conversions::ConversionStore;
use crate::guard::GuardLimits;
use crate::health::HealthStore;
use crate::ledger::Ledger;
use crate::metrics::Metrics;
use crate::phone::PhoneHasher;
use crate::sent::SentMessages;
use crate::spend::SpendMeter;
use crate::switches::SwitchStore;
use crate::throughput::ThroughputLimits;

/// What a reload replaces.
#[derive(Debug)]
pub(crate) struct Runtime {
    pub(crate) okta: OktaSettings,
    /// When to shed hook requests.
    pub(crate) overload: OverloadSettings,
    /// `{public_base_url}/callbacks`, when configured.
    pub(crate) callback_base: Option<String>,
    pub(crate) delivery: DeliverySettings,
    /// The guard's rules; its counters are [`Shared::guard_limits`].
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
    /// Provider health.
    pub(crate) health: HealthStore,
    /// The retry budget.
    pub(crate) budget: BudgetStore,
    /// The operator's switch per provider.
    pub(crate) switches: SwitchStore,
    /// Each capped provider's throughput bucket.
    pub(crate) throughput: ThroughputLimits,
    /// What sends cost: the guard's daily caps and the budget's hourly ones.
    pub(crate) spend: SpendMeter,
    /// The guard's velocity counters; they outlive reloads wherever a quota is unchanged.
    pub(crate) guard_limits: GuardLimits,
    pub(crate) metrics: Arc<Metrics>,
    /// Where the state replicas share lives (nowhere, in memory mode).
    pub(crate) fleet: crate::fleet::Fleet,
    pub(crate) phones: PhoneHasher,
    pub(crate) ledger: Ledger,
    /// Accepted messages, for matching delivery receipts.
    pub(crate) sent: SentMessages,
    /// Accepted sends awaiting Okta's word on whether their codes were entered.
    pub(crate) conversions: ConversionStore,
    /// Every delivery task, so shutdown can wait for those still running.
    pub(crate) tracker: tokio_util::task::TaskTracker,
    /// Hook requests awaiting answers and deliveries running, for admission control.
    pub(crate) load: crate::overload::Load,
    /// Where the UTC day of the daily spend caps comes from.
    wall_clock: WallClock,
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
        let health = HealthStore::new(settings.health.clone());
        let budget = BudgetStore::new(settings.health.budget().clone());
        let guard_limits = GuardLimits::new(settings.guard.quotas());
        let throughput = ThroughputLimits::new(&settings.throughput);
        let ledger = match settings.state {
            crate::config::StateSettings::Memory => Ledger::new(settings.delivery.ledger_capacity),
            // A resend may reach another replica: unresent codes are judged fleet-wide.
            crate::config::StateSettings::Redis(_) => {
                Ledger::judged_in_fleet(settings.delivery.ledger_capacity)
            }
        };
        let sent = SentMessages::new(settings.delivery.ledger_capacity);
        let conversions = ConversionStore::new(settings.delivery.ledger_capacity);
        let metrics = Arc::new(Metrics::new());
        let fleet = crate::fleet::Fleet::new(&settings.state, Arc::clone(&metrics));
        share_scripts(&fleet, &settings);
        Shared {
            runtime: ArcSwap::from_pointee(Runtime::from_settings(settings)),
            health,
            budget,
            spend: SpendMeter::default(),
            switches: SwitchStore::default(),
            throughput,
            guard_limits,
            metrics,
            fleet,
            phones,
            ledger,
            sent,
            conversions,
            tracker: tokio_util::task::TaskTracker::new(),
            load: crate::overload::Load::default(),
            wall_clock: WallClock::System,
            is_draining: AtomicBool::new(false),
            source: Mutex::new(None),
            rng: Mutex::new(StdRng::from_os_rng()),
        }
    }

    pub(crate) fn seed_rng(&self, seed: u64) {
        *self.rng.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
            StdRng::seed_from_u64(seed);
    }

    /// Draws from the planning RNG. A panic while drawing cannot leave it in a state that
    /// matters, so poisoning is ignored.
    fn with_rng<R>(&self, f: impl FnOnce(&mut StdRng) -> R) -> R {
        f(&mut self.rng.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// The current runtime; hold the `Arc` for the whole request.
    pub(crate) fn runtime(&self) -> Arc<Runtime> {
        self.runtime.load_full()
    }

    /// Days since the Unix epoch, UTC, for the daily spend caps.
    pub(crate) fn today(&self) -> i64 {
        self.wall_clock.today()
    }

    /// Plans `query` against current health, drawing exploration from the server's RNG.
    pub(crate) fn plan(&self, routes: &RouteTable, query: &RouteQuery, now: Instant) -> Plan {
        self.health.read(|health| {
            self.switches.read(|switches| {
                self.with_rng(|rng| plan(routes, health, switches, query, now, rng))
            })
        })
    }

    /// Whether `candidate` may be sent to now: the provider's throughput cap, then the
    /// operator's switch, health, and for a speculative send the retry budget and its spend
    /// cap, agree in one step; nothing is claimed or taken on their refusal (see
    /// [`switchboard_core::attempt`]). The throughput token is taken first, so a send that the
    /// others then refuse has used one: the cap errs on the side of sending less.
    pub(crate) fn begin_attempt(
        &self,
        candidate: &Candidate,
        kind: AttemptKind,
        now: Instant,
    ) -> Admission {
        if !self.throughput.take(candidate.provider(), candidate.key.country()) {
            return Admission::AtCapacity;
        }
        // Redis mode: a probation trial runs on the one replica holding the fleet's lease.
        if !self.health.may_run_trial(&candidate.key, candidate.is_fail_open, now) {
            return Admission::TrialInFlight;
        }
        self.health.update(|health| {
            self.budget.update(|budget| {
                self.spend.update(|spend| {
                    self.switches.read(|switches| {
                        begin_attempt(health, budget, spend, switches, candidate, kind, now)
                    })
                })
            })
        })
    }

    /// Replaces the runtime, carrying health over by provider id, and the budget, spend meter
    /// and guard counters over as they are.
    pub(crate) fn reload(&self, settings: Settings) {
        let providers: Vec<ProviderId> =
            settings.providers.iter().map(|p| p.id().clone()).collect();
        // Each store changes in place, so an attempt that ends during the reload records into
        // the carried-over state whichever runtime it started under.
        self.health.carry_over(settings.health.clone(), providers.iter());
        self.switches.carry_over(providers.iter());
        self.budget.carry_over(settings.health.budget().clone());
        self.spend.recap(settings.health.budget());
        // And the guard's counters, or every reload would reset what a pumping campaign used
        // (a limit whose quota changed starts afresh).
        self.guard_limits.configure(settings.guard.quotas());
        self.throughput.configure(&settings.throughput);
        share_scripts(&self.fleet, &settings);
        let mut runtime = Runtime::from_settings(settings);
        // Keep the fetched Okta signing keys: refetching is wasted, and during a JWKS outage it
        // would fail every valid token until Okta is back.
        let previous = self.runtime.load();
        runtime.okta.auth = runtime.okta.auth.keeping_keys_of(&previous.okta.auth);
        self.runtime.store(Arc::new(runtime));
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
                let running = self.runtime();
                let old_path = &running.okta.path;
                if &settings.okta.path != old_path {
                    tracing::warn!(old = %old_path, new = %settings.okta.path, "okta.path changes take effect on restart");
                }
                // The event hook's route is mounted at start: its path, and whether it is
                // there at all, change on restart (its secrets change now).
                let event_path = |okta: &OktaSettings| okta.events.as_ref().map(|e| e.path.clone());
                let (old_events, new_events) =
                    (event_path(&running.okta), event_path(&settings.okta));
                if new_events != old_events {
                    tracing::warn!(
                        old = old_events.as_deref().unwrap_or("-"),
                        new = new_events.as_deref().unwrap_or("-"),
                        "okta.events.path changes (and adding or removing [okta.events]) take effect on restart"
                    );
                }
                if settings.state.backend() != self.fleet.backend() {
                    tracing::warn!(
                        running = self.fleet.backend(),
                        configured = settings.state.backend(),
                        "[state] changes take effect on restart"
                    );
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

    /// The stores' periodic upkeep (see `upkeep` in lib.rs, which also counts overdue receipts
    /// with the callbacks module and settles expired sends with the events module): metrics
    /// housekeeping and the guard's idle counters.
    pub(crate) fn upkeep(&self, _now: tokio::time::Instant) {
        self.metrics.upkeep();
        self.guard_limits.prune();
    }

    pub(crate) fn start_draining(&self) {
        self.is_draining.store(true, Ordering::SeqCst);
    }

    pub(crate) fn is_draining(&self) -> bool {
        self.is_draining.load(Ordering::SeqCst)
    }
}

/// In Redis mode, hands every provider the shared store for what it serves from its callback
/// route (Plivo's call scripts), so a fetch may land on any replica.
fn share_scripts(fleet: &crate::fleet::Fleet, settings: &Settings) {
    let Some(scripts) = fleet.scripts() else { return };
    for provider in &settings.providers {
        provider.share_scripts(Arc::clone(&scripts));
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
