//! `switchboard simulate SCENARIO`: a deterministic, virtual-time replay of a scenario through
//! the real server, beside two baselines.
//!
//! # Why the real server, on a paused clock?
//!
//! A model of switchboard's routing would measure the model. The simulator instead builds the
//! server from the scenario's configuration (`Server::new`), swaps each configured provider for
//! an emulated one of the same id, and sends Okta-shaped JSON through `hook_router()` with
//! `oneshot` (no sockets): authentication, parsing, the ledger, the guard, dispatch, health and
//! background delivery all run as in production. Everything runs on a current-thread tokio
//! runtime whose clock is paused: when every task is waiting, tokio jumps the clock to the next
//! timer, so a 2,000-second scenario costs only the CPU time of its work, and the same seed gives
//! the same report.
//!
//! The baselines (static priority failover and round-robin, in `baseline.rs`) are not switchboard
//! and not the server: they are small policies over the same emulated providers and the same
//! delivery rules, so the difference in the table is the routing policy.
//!
//! # Accepted is not delivered
//!
//! Each accepted message has a fate (`emulated.rs`): it reaches the phone or not, and its
//! provider's receipt says what it says, when it says it. The report counts codes on phones, not
//! acceptances. In switchboard runs the receipts reach the server's callback route and, with
//! `[users]` and `[okta.events]`, the codes users enter reach its event hook, as Okta would post
//! them; users whose code does not come ask again, in every policy's run alike (`users.rs`).
//! `sb-receipts` and `sb-convert` run the server with one of the two signals, to see what each
//! is worth alone.

mod baseline;
mod emulated;
mod journal;
mod numbers;
mod phases;
mod report;
mod scenario;
mod traffic;
mod users;

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use switchboard_core::ProviderId;
use switchboard_providers::{ProviderConfig, SharedProvider};
use switchboard_server::config::FileConfig;
use switchboard_server::{Server, Settings};
use tokio::time::Instant;
use tower::ServiceExt;

pub use phases::{PhaseInfo, PhaseShares};
pub use report::{PolicyReport, ScenarioReport};
pub use scenario::{SHIPPED, Scenario};

use crate::harness;
use baseline::{Baseline, BaselineRouter};
use emulated::{EmulatedProvider, Poster, World};
use journal::event_id;
use traffic::Arrival;

/// Options of `switchboard simulate`.
#[derive(Debug, Clone, clap::Args)]
pub struct SimulateOptions {
    /// A shipped scenario (`all-healthy`, `primary-outage`, `brownout`, `flapping`,
    /// `rate-limit-storm`, `regional-outage`, `price-change`, `morning-peak`,
    /// `carrier-filtering`, `lying-receipts`, `receipts-lost`), `all` for every one, or the
    /// path of a scenario file.
    pub scenario: String,
    /// OTPs per run.
    #[arg(long, default_value_t = 100_000)]
    pub otps: u64,
    /// Seed for arrivals, destinations, latencies, faults, messages' fates and users.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Which policies to run.
    #[arg(long, value_enum, default_value = "all")]
    pub policy: PolicyChoice,
}

/// `--policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PolicyChoice {
    /// switchboard and both baselines; in a scenario with handset phases and Okta's event
    /// hook, switchboard with each delivery signal alone too.
    All,
    /// switchboard only.
    Switchboard,
    /// switchboard without Okta's event hook: receipts (and, as the server reads them then,
    /// resends) are its delivery evidence.
    SbReceipts,
    /// switchboard whose providers' receipts never arrive: conversions are its only evidence.
    SbConvert,
    /// Static priority failover only.
    Priority,
    /// Round-robin only.
    RoundRobin,
}

/// One routing policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// The real server with the scenario's configuration.
    Switchboard,
    /// The real server without `[okta.events]`: delivery receipts are its evidence of what
    /// reaches phones (and resends, which the server then counts against the previous provider).
    SwitchboardReceiptsOnly,
    /// The real server with no receipt ever posted: conversions (codes entered, reported by
    /// Okta's event hook) are its only evidence.
    SwitchboardConversionsOnly,
    /// Baseline: configured order, no memory.
    Priority,
    /// Baseline: rotating start, no memory.
    RoundRobin,
}

impl Policy {
    /// The name in the report.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Policy::Switchboard => "switchboard",
            Policy::SwitchboardReceiptsOnly => "sb-receipts",
            Policy::SwitchboardConversionsOnly => "sb-convert",
            Policy::Priority => "priority",
            Policy::RoundRobin => "round-robin",
        }
    }

    /// For the server's runs: which delivery signals reach it.
    fn signals(self) -> Option<Signals> {
        match self {
            Policy::Switchboard => Some(Signals { receipts: true, conversions: true }),
            Policy::SwitchboardReceiptsOnly => Some(Signals { receipts: true, conversions: false }),
            Policy::SwitchboardConversionsOnly => {
                Some(Signals { receipts: false, conversions: true })
            }
            Policy::Priority | Policy::RoundRobin => None,
        }
    }
}

/// The delivery evidence a switchboard run gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Signals {
    /// Providers' delivery receipts are posted to the callback route.
    receipts: bool,
    /// `[okta.events]` is configured and users' entered codes are posted to it.
    conversions: bool,
}

impl PolicyChoice {
    fn policies(self, scenario: &Scenario) -> Vec<Policy> {
        match self {
            PolicyChoice::All if scenario.compares_signals() => vec![
                Policy::Switchboard,
                Policy::SwitchboardReceiptsOnly,
                Policy::SwitchboardConversionsOnly,
                Policy::Priority,
                Policy::RoundRobin,
            ],
            PolicyChoice::All => vec![Policy::Switchboard, Policy::Priority, Policy::RoundRobin],
            PolicyChoice::Switchboard => vec![Policy::Switchboard],
            PolicyChoice::SbReceipts => vec![Policy::SwitchboardReceiptsOnly],
            PolicyChoice::SbConvert => vec![Policy::SwitchboardConversionsOnly],
            PolicyChoice::Priority => vec![Policy::Priority],
            PolicyChoice::RoundRobin => vec![Policy::RoundRobin],
        }
    }
}

/// Runs the scenario (or every shipped one), printing each table to `out` as it completes.
pub fn run(options: &SimulateOptions, mut out: impl Write) -> anyhow::Result<Vec<ScenarioReport>> {
    anyhow::ensure!(options.otps >= 1, "--otps must be at least 1");
    let names: Vec<&str> = if options.scenario == "all" {
        SHIPPED.iter().map(|(name, _)| *name).collect()
    } else {
        vec![options.scenario.as_str()]
    };
    let mut reports = Vec::with_capacity(names.len());
    for name in names {
        let scenario = Scenario::load(name)?;
        let policies = options.policy.policies(&scenario);
        let report = simulate(scenario, options.otps, options.seed, &policies)?;
        writeln!(out, "{}", report.render())?;
        out.flush()?;
        reports.push(report);
    }
    Ok(reports)
}

/// Runs `policies` on one scenario with the same arrivals.
pub fn simulate(
    scenario: Scenario,
    otps: u64,
    seed: u64,
    policies: &[Policy],
) -> anyhow::Result<ScenarioReport> {
    let scenario = Arc::new(scenario);
    let arrivals = traffic::arrivals(&scenario, otps, seed);
    let deadline = settings(&scenario, 0, Duration::ZERO)?.okta.deadline;
    let mut report = ScenarioReport::new(&scenario, seed, deadline, &arrivals);
    for policy in policies {
        report.policies.push(run_policy(&scenario, *policy, &arrivals, seed)?);
    }
    Ok(report)
}

fn run_policy(
    scenario: &Arc<Scenario>,
    policy: Policy,
    arrivals: &[Arrival],
    seed: u64,
) -> anyhow::Result<PolicyReport> {
    let started = std::time::Instant::now();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .context("cannot start the simulation runtime")?;
    let okta = settings(scenario, 0, Duration::ZERO)?;
    let (deadline, life) = (okta.okta.deadline, okta.delivery.default_otp_lifetime);
    let (journal, buckets, late_answers, people) = runtime.block_on(async {
        let start = Instant::now();
        let world = Arc::new(World::new(Arc::clone(scenario), seed, arrivals, life, start));
        let late_answers = match (policy, policy.signals()) {
            (_, Some(signals)) => drive_server(scenario, &world, arrivals, seed, signals).await?,
            (Policy::RoundRobin, None) => {
                drive_baseline(scenario, &world, arrivals, Baseline::RoundRobin).await?
            }
            (_, None) => drive_baseline(scenario, &world, arrivals, Baseline::Priority).await?,
        };
        let world = Arc::try_unwrap(world)
            .map_err(|_| anyhow::anyhow!("simulated providers still in use after the run"))?;
        let people = world.people;
        let (journal, buckets) = world.into_parts();
        anyhow::Ok((journal, buckets, late_answers, people))
    })?;
    drop(runtime);
    let mut report =
        PolicyReport::from_journal(policy.name(), arrivals, &journal, deadline, scenario, &people);
    report.late_answers = late_answers;
    report.over_capacity_by_provider = buckets.iter().map(|b| b.over_capacity).collect();
    report.longest_queue_wait =
        buckets.iter().map(|b| b.longest_wait).max().unwrap_or(Duration::ZERO);
    report.wall = started.elapsed();
    Ok(report)
}

/// Validated settings for the scenario's switchboard config with the prices in force `at`, and
/// each provider's adapter timeout. `generation` only tells reloads apart in errors.
fn settings(scenario: &Scenario, generation: usize, at: Duration) -> anyhow::Result<Settings> {
    Ok(settings_with_timeouts(scenario, generation, at, true)?.0)
}

/// The same, and without `[okta.events]` unless `has_events`.
fn settings_with_timeouts(
    scenario: &Scenario,
    generation: usize,
    at: Duration,
    has_events: bool,
) -> anyhow::Result<(Settings, Vec<Duration>)> {
    let table = scenario.switchboard_config(at, has_events);
    let text = toml::to_string(&table).context("switchboard config")?;
    let file = FileConfig::parse(&text, |_| None)
        .with_context(|| format!("switchboard config (version {generation})"))?;
    let timeouts = scenario
        .provider_ids()
        .map(|id| match file.providers.get(id) {
            Some(ProviderConfig::Twilio(twilio)) => Ok(Duration::from_millis(twilio.timeout_ms)),
            _ => {
                anyhow::bail!("switchboard.providers.{id}: the placeholder must be kind \"twilio\"")
            }
        })
        .collect::<anyhow::Result<_>>()?;
    let settings = Settings::from_file(file).context("switchboard config")?;
    Ok((settings, timeouts))
}

/// The emulated providers for `settings`, in scenario order.
fn emulated_providers(
    scenario: &Scenario,
    world: &Arc<World>,
    timeouts: &[Duration],
) -> anyhow::Result<Vec<(ProviderId, Arc<EmulatedProvider>)>> {
    scenario
        .provider_ids()
        .enumerate()
        .map(|(index, id)| {
            let id = ProviderId::parse(id).with_context(|| format!("providers.{id}: bad id"))?;
            let provider =
                EmulatedProvider::new(id.clone(), index, timeouts[index], Arc::clone(world));
            Ok((id, Arc::new(provider)))
        })
        .collect()
}

/// Settings whose providers are the emulated ones.
fn emulated_settings(
    scenario: &Scenario,
    world: &Arc<World>,
    generation: usize,
    at: Duration,
    signals: Signals,
) -> anyhow::Result<Settings> {
    let (mut settings, timeouts) =
        settings_with_timeouts(scenario, generation, at, signals.conversions)?;
    settings.providers = emulated_providers(scenario, world, &timeouts)?
        .into_iter()
        .map(|(_, provider)| provider as SharedProvider)
        .collect();
    Ok(settings)
}

/// Sends every arrival, and every user's resend, through the real server's hook router, with
/// the receipts and conversions `signals` lets through; returns the answers later than the
/// deadline.
async fn drive_server(
    scenario: &Arc<Scenario>,
    world: &Arc<World>,
    arrivals: &[Arrival],
    seed: u64,
    signals: Signals,
) -> anyhow::Result<u64> {
    let settings = emulated_settings(scenario, world, 0, Duration::ZERO, signals)?;
    let deadline = settings.okta.deadline;
    let path = settings.okta.path.clone();
    let lifetime = settings.delivery.default_otp_lifetime;
    let server = Server::new(settings).with_rng_seed(seed);
    let router = server.hook_router();
    // The upkeep `serve` runs every 5 s: overdue receipts, codes never entered, codes never
    // asked for again. On the virtual clock, as everything else.
    let upkeep = {
        let server = server.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(UPKEEP_INTERVAL);
            loop {
                tick.tick().await;
                server.upkeep();
            }
        })
    };
    world.post_to(Poster {
        router: router.clone(),
        has_receipts: signals.receipts,
        events: scenario.events_endpoint().filter(|_| signals.conversions),
    });
    let start = world.start;
    let mut price_changes = scenario.price_changes.iter().enumerate().peekable();
    let mut answers = tokio::task::JoinSet::new();
    let mut sign_ins = tokio::task::JoinSet::new();
    let mut late_answers = 0;
    let mut is_answer_late = |answer: Result<anyhow::Result<u64>, tokio::task::JoinError>| {
        late_answers += answer.context("a hook request task failed")??;
        anyhow::Ok(())
    };
    let hook = Hook { router: router.clone(), path, deadline };
    for (index, arrival) in arrivals.iter().enumerate() {
        while let Some((generation, change)) =
            price_changes.next_if(|(_, change)| change.at <= arrival.at)
        {
            tokio::time::sleep_until(start + change.at).await;
            // The operator updates the price table the moment the price changes.
            server.reload(emulated_settings(scenario, world, generation + 1, change.at, signals)?);
        }
        tokio::time::sleep_until(start + arrival.at).await;
        answers.spawn(hook.call(index, index, arrival));
        if world.people.has_users() {
            let (hook, arrival) = (hook.clone(), arrival.clone());
            let resend = move |request: usize| tokio::spawn(hook.call(request, index, &arrival));
            sign_ins.spawn(ask_again(Arc::clone(world), index, resend));
        }
        while let Some(answer) = answers.try_join_next() {
            is_answer_late(answer)?;
        }
        while let Some(answer) = sign_ins.try_join_next() {
            is_answer_late(answer)?;
        }
    }
    while let Some(answer) = answers.join_next().await {
        is_answer_late(answer)?;
    }
    while let Some(answer) = sign_ins.join_next().await {
        is_answer_late(answer)?;
    }
    // Background deliveries end when their OTP expires; the clock is virtual, so waiting is free.
    tokio::time::sleep(lifetime + Duration::from_secs(60)).await;
    world.finish().await.context("posting receipts and Okta events")?;
    upkeep.abort();
    // Its copy of the server holds the emulated providers: wait until it is dropped.
    let _ = upkeep.await;
    drop(router);
    drop(server);
    Ok(late_answers)
}

/// How often the server's upkeep runs, as `serve` runs it.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Okta, calling the telephony hook.
#[derive(Clone)]
struct Hook {
    router: axum::Router,
    path: String,
    deadline: Duration,
}

impl Hook {
    /// Journal entry `index`'s request, for sign-in `user`; yields 1 if answered after the
    /// deadline.
    fn call(
        &self,
        index: usize,
        user: usize,
        arrival: &Arrival,
    ) -> impl Future<Output = anyhow::Result<u64>> + Send + 'static {
        let request = Request::post(&self.path)
            .header("content-type", "application/json")
            .header("authorization", scenario::OKTA_SECRET)
            .body(Body::from(okta_request(index, user, arrival)))
            .context("building a hook request");
        let (router, deadline) = (self.router.clone(), self.deadline);
        async move {
            let sent = Instant::now();
            let response = router.oneshot(request?).await?;
            anyhow::ensure!(
                response.status() == StatusCode::OK,
                "hook answered {} for OTP {index}",
                response.status()
            );
            Ok(u64::from(sent.elapsed() > deadline))
        }
    }
}

/// A user who waits for their code and asks again when it does not come: from sign-in `user`'s
/// first request until a code is on the phone or the user has asked `max_resends` times.
/// `resend(request)` makes the journal's request `request` (a new hook call, or a baseline's
/// delivery) and yields whether its answer was late. Returns how many answers were late.
async fn ask_again<F>(world: Arc<World>, user: usize, mut resend: F) -> anyhow::Result<u64>
where
    F: FnMut(usize) -> tokio::task::JoinHandle<anyhow::Result<u64>>,
{
    let first = world.first_request(user);
    let mut asked = Vec::new();
    let mut k = 0;
    while let Some(again) = world.people.asks_again_at(first, user, k) {
        tokio::time::sleep_until(world.start + again).await;
        if world.has_code_on_phone(user, k) {
            break;
        }
        k += 1;
        world.note_request(user, k, again);
        asked.push(resend(world.request_index(user, k)));
    }
    let mut late_answers = 0;
    for answer in asked {
        late_answers += answer.await.context("a resend task failed")??;
    }
    Ok(late_answers)
}

/// Runs every arrival, and every user's resend, through a baseline over the same emulated
/// providers.
///
/// Its arrival loop looks like `drive_server`'s on purpose, and is not shared: the baseline has
/// no price reloads, no HTTP answers to time and no hook router to drain, so a common loop
/// would take all three as hooks that only one side uses.
async fn drive_baseline(
    scenario: &Arc<Scenario>,
    world: &Arc<World>,
    arrivals: &[Arrival],
    baseline: Baseline,
) -> anyhow::Result<u64> {
    let (settings, timeouts) = settings_with_timeouts(scenario, 0, Duration::ZERO, false)?;
    let providers = emulated_providers(scenario, world, &timeouts)?;
    let router = Arc::new(BaselineRouter::new(baseline, settings, providers));
    let start = world.start;
    let mut deliveries = tokio::task::JoinSet::new();
    let mut sign_ins = tokio::task::JoinSet::new();
    for (index, arrival) in arrivals.iter().enumerate() {
        tokio::time::sleep_until(start + arrival.at).await;
        {
            let router = Arc::clone(&router);
            let arrival = arrival.clone();
            deliveries.spawn(async move { router.deliver(&arrival, index).await });
        }
        if world.people.has_users() {
            let (router, arrival) = (Arc::clone(&router), arrival.clone());
            let resend = move |request: usize| {
                let (router, arrival) = (Arc::clone(&router), arrival.clone());
                tokio::spawn(async move {
                    router.deliver(&arrival, request).await;
                    Ok(0)
                })
            };
            sign_ins.spawn(ask_again(Arc::clone(world), index, resend));
        }
        while deliveries.try_join_next().is_some() {}
        while let Some(sign_in) = sign_ins.try_join_next() {
            sign_in.context("a user task failed")??;
        }
    }
    while deliveries.join_next().await.is_some() {}
    while let Some(sign_in) = sign_ins.join_next().await {
        sign_in.context("a user task failed")??;
    }
    Ok(0)
}

/// An Okta telephony hook request: journal entry `index`, made by sign-in `user` (the same user
/// and number on every resend, a new `eventId` and code each time). No `otpExpires`: the server
/// would compare it with the wall clock, which does not move here; the configured default
/// lifetime applies.
fn okta_request(index: usize, user: usize, arrival: &Arrival) -> String {
    let code = harness::passcode(index as u64, 104_729);
    harness::okta_request(user as u64, arrival.channel, &arrival.phone, &code)
        .event_id(event_id(index))
        .to_string()
}
