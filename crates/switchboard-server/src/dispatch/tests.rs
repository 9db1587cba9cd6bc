//! Dispatch on tokio's paused clock, driven directly (no hook, no ledger) against scripted
//! providers: which provider gets each send, when, and how the delivery ends. Virtual time
//! makes every timing exact.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchboard_core::{
    Channel, Destination, ErrorClass, MessageText, OutboundMessage, Passcode, ProviderId, Purpose,
};
use tokio::sync::watch;
use tokio::time::Instant;

use super::waiting::{Backoff, LAST_PASS_LEAD, MAX_BACKOFF, WAIT_FOR_PROVIDER, next_pass_at};
use super::{DispatchResult, Limits, Progress, Undelivered, deliver};
use crate::Server;
use crate::testing::{Config, Fake, Mode, server, server_with};

const OK: Mode = Mode::Accept { latency: Duration::from_millis(100) };
/// The harness's rule, with exploration off so `primary` always goes first.
const PRIORITY: &str = "optimize = \"priority\"";
/// The fakes' own timeout for a hanging send.
const PROVIDER_TIMEOUT: Duration = Duration::from_millis(1_000);
const PASSCODE: &str = "482915";
const NUMBER: &str = "+14155550100";

fn message() -> OutboundMessage {
    OutboundMessage {
        reference: "evt-dispatch".to_owned(),
        destination: Destination::parse(NUMBER, None).expect("a valid number"),
        channel: Channel::Sms,
        passcode: Passcode::parse(PASSCODE).expect("a valid code"),
        text: MessageText::new(format!("Your verification code is {PASSCODE}")),
        locale: None,
    }
}

/// One pass until `within` from now (Okta told the truth), or passes until then in the
/// background.
fn limits(within: Duration, is_background: bool, max_attempts: u32) -> Limits {
    Limits {
        attempt_deadline: Instant::now() + within,
        max_attempts,
        is_background,
        retry_backoff: Duration::from_millis(500),
        avoid: None,
        purpose: Purpose::Verification,
        segments: 1,
    }
}

async fn dispatch(server: &Server, limits: &Limits) -> (DispatchResult, Progress) {
    let runtime = server.shared.runtime();
    let (progress, _watching) = watch::channel(Progress::default());
    let result = deliver(&server.shared, &runtime, &message(), limits, &progress).await;
    let snapshot = progress.borrow().clone();
    (result, snapshot)
}

fn id(name: &str) -> ProviderId {
    ProviderId::parse(name).expect("a valid id")
}

fn send_times(fake: &Fake) -> Vec<Instant> {
    fake.sends().into_iter().map(|(at, _)| at).collect()
}

fn delivered_by(name: &str, result: &DispatchResult) -> bool {
    matches!(result, DispatchResult::Delivered { provider, .. } if *provider == id(name))
}

#[tokio::test(start_paused = true)]
async fn a_refusal_cascades_to_the_next_provider_at_once() {
    let (server, primary, backup) = server(PRIORITY, Mode::Refuse, OK);
    let started = Instant::now();
    let (result, progress) =
        dispatch(&server, &limits(Duration::from_millis(2_400), false, 4)).await;
    assert!(delivered_by("backup", &result), "{result:?}");
    assert_eq!(send_times(&primary), vec![started]);
    assert_eq!(send_times(&backup), vec![started], "no wait after a refusal");
    assert_eq!(Instant::now() - started, Duration::from_millis(100));
    assert_eq!(progress.strategy, "cascade");
    let attempts: Vec<_> = progress.attempts.iter().map(|a| a.provider.to_string()).collect();
    assert_eq!(attempts, ["primary", "backup"]);
}

#[tokio::test(start_paused = true)]
async fn a_hanging_provider_times_out_and_dispatch_fails_over() {
    let (server, primary, backup) = server(PRIORITY, Mode::Hang, OK);
    let started = Instant::now();
    let (result, _) = dispatch(&server, &limits(Duration::from_millis(2_400), false, 4)).await;
    assert!(delivered_by("backup", &result), "{result:?}");
    assert_eq!(send_times(&primary), vec![started]);
    assert_eq!(send_times(&backup), vec![started + PROVIDER_TIMEOUT]);
    let metrics = server.shared.metrics.render();
    assert!(
        metrics.contains(r#"switchboard_possible_duplicates_total{provider="primary"} 1"#),
        "the cut-off send may have reached the primary: {metrics}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_attempt_deadline_cuts_off_a_hanging_provider() {
    let (server, primary, backup) = server(PRIORITY, Mode::Hang, OK);
    let started = Instant::now();
    let (result, _) = dispatch(&server, &limits(Duration::from_millis(600), false, 4)).await;
    assert_eq!(result, DispatchResult::Undelivered { reason: Undelivered::DeadlineReached });
    assert_eq!(Instant::now() - started, Duration::from_millis(600), "ended at the deadline");
    assert_eq!(primary.sends().len(), 1);
    assert!(backup.sends().is_empty(), "no time was left for the backup");
}

#[tokio::test(start_paused = true)]
async fn a_hedge_fires_after_its_delay_and_the_first_acceptance_wins() {
    let route = "optimize = \"priority\"\nstrategy = \"hedge\"\nhedge_delay_ms = 300";
    let slow = Mode::Accept { latency: Duration::from_millis(1_000) };
    let (server, primary, backup) = server(route, slow, OK);
    let started = Instant::now();
    let (result, progress) =
        dispatch(&server, &limits(Duration::from_millis(2_400), false, 4)).await;
    assert!(delivered_by("backup", &result), "{result:?}");
    assert_eq!(send_times(&primary), vec![started]);
    assert_eq!(send_times(&backup), vec![started + Duration::from_millis(300)]);
    assert_eq!(
        Instant::now() - started,
        Duration::from_millis(400),
        "the slow send is not awaited"
    );
    assert_eq!(progress.strategy, "hedge");
    assert_eq!(progress.attempts.len(), 1, "the abandoned send reports nothing");
}

#[tokio::test(start_paused = true)]
async fn a_race_sends_to_both_at_once() {
    let route = "optimize = \"priority\"\nstrategy = \"race\"";
    let (server, primary, backup) =
        server(route, Mode::Accept { latency: Duration::from_millis(300) }, OK);
    let started = Instant::now();
    let (result, progress) =
        dispatch(&server, &limits(Duration::from_millis(2_400), false, 4)).await;
    assert!(delivered_by("backup", &result), "{result:?}");
    assert_eq!(send_times(&primary), vec![started]);
    assert_eq!(send_times(&backup), vec![started]);
    assert_eq!(Instant::now() - started, Duration::from_millis(100));
    assert_eq!(progress.strategy, "race");
}

#[tokio::test(start_paused = true)]
async fn a_number_level_refusal_stops_the_cascade() {
    let (server, primary, backup) = server(PRIORITY, Mode::Reject(ErrorClass::InvalidNumber), OK);
    let (result, _) = dispatch(&server, &limits(LIFE, true, 4)).await;
    assert_eq!(result, DispatchResult::Rejected { class: ErrorClass::InvalidNumber });
    assert_eq!(primary.sends().len(), 1);
    assert!(backup.sends().is_empty(), "every provider would refuse the number too");
}

const LIFE: Duration = Duration::from_secs(30);

#[tokio::test(start_paused = true)]
async fn background_delivery_stops_at_the_otps_expiry() {
    let (server, primary, backup) = server(PRIORITY, Mode::Refuse, Mode::Refuse);
    let started = Instant::now();
    let expiry = started + LIFE;
    let (result, progress) = dispatch(&server, &limits(LIFE, true, 4)).await;
    assert_eq!(result, DispatchResult::Undelivered { reason: Undelivered::Expired });
    assert!(Instant::now() <= expiry, "ended {:?} after the expiry", Instant::now() - expiry);
    let sends: Vec<Instant> = send_times(&primary).into_iter().chain(send_times(&backup)).collect();
    assert!(sends.len() > 10, "refusals cost nothing: it kept trying ({} sends)", sends.len());
    assert!(sends.iter().all(|at| *at < expiry), "nothing is sent after the code expired");
    assert!(
        sends.iter().any(|at| *at >= expiry - LAST_PASS_LEAD - Duration::from_secs(1)),
        "it tried until the last second"
    );
    assert!(!progress.is_waiting);
}

#[tokio::test(start_paused = true)]
async fn max_attempts_bounds_possibly_accepted_sends() {
    let (server, primary, backup) = server(PRIORITY, Mode::Hang, Mode::Hang);
    let (result, _) = dispatch(&server, &limits(LIFE, true, 3)).await;
    assert_eq!(result, DispatchResult::Undelivered { reason: Undelivered::AttemptsExhausted });
    assert_eq!(primary.sends().len() + backup.sends().len(), 3, "three sends may have landed");
    assert_eq!(primary.sends().len(), 2, "the second pass starts with the primary again");
}

#[tokio::test(start_paused = true)]
async fn definite_refusals_do_not_count_against_max_attempts() {
    // One possibly-accepted send allowed; refusals before it do not use it up.
    let (server, primary, backup) = server(PRIORITY, Mode::Refuse, Mode::Hang);
    let (result, _) = dispatch(&server, &limits(LIFE, true, 1)).await;
    assert_eq!(result, DispatchResult::Undelivered { reason: Undelivered::AttemptsExhausted });
    assert_eq!(primary.sends().len(), 1);
    assert_eq!(backup.sends().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn every_attempt_is_logged_once_without_the_code_or_the_number() {
    let logs = capture_logs();
    let (server, _, _) = server(PRIORITY, Mode::Refuse, OK);
    let runtime = server.shared.runtime();
    let (progress, _watching) = watch::channel(Progress::default());
    let message = OutboundMessage { reference: "evt-logged-once".to_owned(), ..message() };
    let limits = limits(Duration::from_millis(2_400), false, 4);
    let result = deliver(&server.shared, &runtime, &message, &limits, &progress).await;
    assert!(delivered_by("backup", &result));
    let text = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    let ours: Vec<&str> = text.lines().filter(|l| l.contains("evt-logged-once")).collect();
    let failed: Vec<&&str> = ours.iter().filter(|l| l.contains("attempt failed")).collect();
    assert_eq!(failed.len(), 1, "{ours:#?}");
    for field in ["provider=primary", "kind=\"fake\"", "class=transient", "certainty=\"not_sent\""]
    {
        assert!(failed[0].contains(field), "{field} in {}", failed[0]);
    }
    assert_eq!(ours.iter().filter(|l| l.contains("attempt accepted")).count(), 1, "{ours:#?}");
    for line in ours {
        assert!(!line.contains(PASSCODE) && !line.contains(&NUMBER[2..]), "{line}");
    }
}

/// Every log line of the process from now on, at debug and above. A global subscriber: a
/// thread's own default loses events whose call sites other tests' threads met first with no
/// subscriber (their interest is cached process-wide).
fn capture_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: std::sync::OnceLock<Arc<Mutex<Vec<u8>>>> = std::sync::OnceLock::new();
    Arc::clone(LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let writer = Arc::clone(&logs);
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || Capture(Arc::clone(&writer)))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber");
        logs
    }))
}

/// A log writer into a shared buffer.
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn backoff_doubles_after_passes_that_sent_and_looks_again_soon_after_those_that_did_not() {
    let mut backoff = Backoff::new(Duration::from_millis(800));
    assert_eq!(backoff.after(0), WAIT_FOR_PROVIDER);
    assert_eq!(backoff.after(1), Duration::from_millis(800));
    assert_eq!(backoff.after(2), Duration::from_millis(1_600));
    assert_eq!(backoff.after(1), Duration::from_millis(3_200));
    assert_eq!(backoff.after(1), MAX_BACKOFF);
    assert_eq!(backoff.after(1), MAX_BACKOFF);
    let mut short = Backoff::new(Duration::from_millis(100));
    assert_eq!(short.after(0), Duration::from_millis(100), "never longer than the backoff");
}

#[tokio::test(start_paused = true)]
async fn the_last_pass_starts_a_second_before_the_code_expires() {
    let now = Instant::now();
    let expiry = now + Duration::from_secs(10);
    let wait = Duration::from_secs(2);
    assert_eq!(next_pass_at(now, wait, expiry), Some(now + wait));
    let late = expiry - Duration::from_millis(1_500);
    assert_eq!(next_pass_at(late, wait, expiry), Some(expiry - LAST_PASS_LEAD), "cut short");
    assert_eq!(next_pass_at(expiry - LAST_PASS_LEAD, wait, expiry), None, "no pass left");
}

#[tokio::test(start_paused = true)]
async fn a_provider_at_its_throughput_cap_is_skipped_until_its_bucket_refills() {
    let config = Config { primary: "max_per_second = 2", extra: PRIORITY, ..Config::default() };
    let (server, primary, backup) = server_with(config, OK, OK);
    let within = limits(Duration::from_millis(2_400), false, 4);
    // A wave of five codes at one instant: the primary takes its one second's worth.
    let wave = futures::future::join_all((0..5).map(|_| dispatch(&server, &within))).await;
    let by = |name| wave.iter().filter(|(result, _)| delivered_by(name, result)).count();
    assert_eq!((by("primary"), by("backup")), (2, 3), "{wave:?}");
    assert_eq!(primary.sends().len(), 2, "nothing queued at the capped provider");
    assert_eq!(backup.sends().len(), 3);
    let metrics = server.shared.metrics.render();
    assert!(
        metrics.contains(r#"switchboard_provider_at_capacity_total{provider="primary"} 3"#),
        "{metrics}"
    );
    // A second later the bucket is full again and the primary is first once more.
    tokio::time::advance(Duration::from_secs(1)).await;
    let (result, _) = dispatch(&server, &limits(Duration::from_millis(2_400), false, 4)).await;
    assert!(delivered_by("primary", &result), "{result:?}");
    assert_eq!(primary.sends().len(), 3);
    // And explain says so, in words and in the admin API's JSON.
    let query = crate::explain::ExplainQuery {
        number: NUMBER.to_owned(),
        channel: Channel::Sms,
        purpose: None,
    };
    let (text, json) = crate::explain::explain_live(&server.shared, &query).expect("explained");
    assert!(text.contains("throughput   primary: at most 2 sends a second"), "{text}");
    assert_eq!(json["candidates"][0]["max_per_second"], 2, "{json}");
    assert!(json["candidates"][1]["max_per_second"].is_null(), "{json}");
}

#[tokio::test(start_paused = true)]
async fn a_senders_own_cap_holds_inside_the_accounts() {
    // The account may send 10 a second; its US sender, a long code, one.
    let config = Config {
        primary: "max_per_second = 10\n[providers.primary.senders.US]\nsms = \"+15005550006\"\nmax_per_second = 1",
        extra: PRIORITY,
        ..Config::default()
    };
    let (server, primary, backup) = server_with(config, OK, OK);
    let within = limits(Duration::from_millis(2_400), false, 4);
    let wave = futures::future::join_all((0..3).map(|_| dispatch(&server, &within))).await;
    let by = |name| wave.iter().filter(|(result, _)| delivered_by(name, result)).count();
    assert_eq!((by("primary"), by("backup")), (1, 2), "{wave:?}");
    assert_eq!((primary.sends().len(), backup.sends().len()), (1, 2));
    let query = crate::explain::ExplainQuery {
        number: NUMBER.to_owned(),
        channel: Channel::Sms,
        purpose: None,
    };
    let (text, json) = crate::explain::explain_live(&server.shared, &query).expect("explained");
    assert!(
        text.contains(
            "throughput   primary: at most 10 sends a second, its US sender at most 1 a second"
        ),
        "{text}"
    );
    assert_eq!(json["candidates"][0]["sender_max_per_second"], 1, "{json}");
}
