//! The chaos harness's accounting on two runs whose outcome is known: all providers healthy
//! (every code accepted exactly once, repeats included), and the primary slower than its
//! timeout (everything it read counts as accepted, and the duplicates counted per code agree
//! with what each emulator's journal holds).

use switchboard::chaos::{ChaosOptions, Mix, StateBackend, run};

/// A printed report must never carry a passcode: the harness's codes are six digits.
fn has_six_digit_run(text: &str) -> bool {
    text.split(|c: char| !c.is_ascii_digit()).any(|run| run.len() >= 6)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_healthy_accepts_every_code_exactly_once() {
    let _turn = crate::WALL_CLOCK.lock().await;
    let options = ChaosOptions {
        mix: Mix::None,
        seed: 5,
        requests: 100,
        rate: 50,
        otp_life_s: 3,
        retry_share: 0.3,
        replicas: 1,
        state: StateBackend::Memory,
        redis_pause: None,
    };
    let mut out = Vec::new();
    let report = run(options, &mut out).await.unwrap();
    let printed = String::from_utf8(out).unwrap();

    assert_eq!(report.codes, 100, "{printed}");
    assert!(report.repeats > 0, "{printed}");
    assert_eq!(report.requests, report.codes + report.repeats, "{printed}");
    assert_eq!(report.answers.get("SUCCESSFUL").copied(), Some(report.requests), "{printed}");
    // One send per code, repeats or not, and each one accepted.
    assert_eq!(report.sends, 100, "{printed}");
    assert_eq!(report.sends_accepted, 100, "{printed}");
    assert_eq!(report.accepted_before_expiry, 100, "{printed}");
    let distinct: u64 = report.providers.iter().map(|p| p.distinct_codes_accepted).sum();
    assert_eq!(distinct, 100, "{printed}");
    assert_eq!(report.lost_while_able + report.lost_while_unable, 0, "{printed}");
    assert_eq!(report.duplicates, 0, "{printed}");
    assert_eq!(report.second_sends_from_repeats, 0, "{printed}");
    assert!(printed.contains("met    0 lost whenever"), "{printed}");
    assert!(!has_six_digit_run(&printed), "a code may have been printed:\n{printed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_primary_makes_exactly_its_codes_duplicates() {
    let _turn = crate::WALL_CLOCK.lock().await;
    let options = ChaosOptions {
        mix: Mix::PrimarySlow,
        seed: 9,
        requests: 60,
        rate: 30,
        otp_life_s: 6,
        retry_share: 0.0,
        replicas: 1,
        state: StateBackend::Memory,
        redis_pause: None,
    };
    let mut out = Vec::new();
    let report = run(options, &mut out).await.unwrap();
    let printed = String::from_utf8(out).unwrap();

    let primary = &report.providers[0];
    assert_eq!(primary.id, "twilio-a", "{printed}");
    // The slow primary has every message it read: each counts as accepted.
    assert!(primary.received >= 1, "{printed}");
    assert_eq!(primary.accepted, primary.received, "{printed}");
    assert_eq!(report.sends_accepted, report.sends, "{printed}");
    // Duplicates are counted per code; the same figure must come out of the per-provider
    // counts: codes taken by two providers, plus second sends to the same provider.
    let distinct: u64 = report.providers.iter().map(|p| p.distinct_codes_accepted).sum();
    assert!(report.duplicates >= distinct - report.codes, "{printed}");
    assert!(report.duplicates <= report.sends_accepted - report.codes, "{printed}");
    if report.sends_accepted == distinct {
        assert_eq!(report.duplicates, distinct - report.codes, "{printed}");
    }
    // A timeout is a possible acceptance that still fails over, so some codes went out twice.
    assert!(report.duplicates >= 1, "{printed}");
    assert_eq!(report.accepted_before_expiry, report.codes, "{printed}");
    assert_eq!(report.lost_while_able + report.lost_while_unable, 0, "{printed}");
    assert_eq!(report.repeats, 0, "{printed}");
    assert_eq!(report.duplicates_repeated, 0, "{printed}");
}

/// Three replicas, every repeat sent to a replica other than the first request's: each in its
/// own memory they send repeated codes twice; sharing one Redis they send each code once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_sharing_redis_send_each_repeated_code_once() {
    let _turn = crate::WALL_CLOCK.lock().await;
    let options = |state| ChaosOptions {
        mix: Mix::None,
        seed: 7,
        requests: 90,
        rate: 45,
        otp_life_s: 3,
        retry_share: 0.4,
        replicas: 3,
        state,
        redis_pause: None,
    };
    let mut out = Vec::new();
    let apart = run(options(StateBackend::Memory), &mut out).await.unwrap();
    let printed = String::from_utf8(std::mem::take(&mut out)).unwrap();
    assert!(apart.repeats > 0, "{printed}");
    assert!(
        apart.duplicates_repeated > 0,
        "separate memories cannot see each other's events:\n{printed}"
    );

    let shared = run(options(StateBackend::Redis), &mut out).await.unwrap();
    let printed = String::from_utf8(out).unwrap();
    assert!(printed.contains("3 replica(s), state in one redis-server"), "{printed}");
    assert!(shared.repeats > 0, "{printed}");
    assert_eq!(shared.answers.get("SUCCESSFUL").copied(), Some(shared.requests), "{printed}");
    assert_eq!(shared.sends, 90, "one send per code, wherever its repeat landed:\n{printed}");
    assert_eq!(shared.duplicates, 0, "{printed}");
    assert_eq!(shared.lost_while_able + shared.lost_while_unable, 0, "{printed}");
}
