//! The demo, short: the primary breaks, the backup carries every request while it is broken, and
//! every answer comes back SUCCESSFUL. (Latency is the benchmarks' business, not a test's.)

use switchboard::demo::{DemoFault, DemoOptions, Phase, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_shows_failover_to_the_backup() {
    let _turn = crate::WALL_CLOCK.lock().await;
    let mut out = Vec::new();
    let options = DemoOptions { duration_s: 4, rate: 25, fault: DemoFault::ServerError };
    let summary = run(options, &mut out).await.unwrap();
    let printed = String::from_utf8(out).unwrap();

    assert!(summary.sent >= 90, "{printed}");
    assert_eq!(summary.answers.get("SUCCESSFUL").copied(), Some(summary.sent), "{printed}");
    let carried = |phase, provider: &str| {
        summary.carried.get(&(phase, provider.to_owned())).copied().unwrap_or(0)
    };
    // Who carried the healthy phase depends on timing (an overloaded machine can time the
    // primary out); what the broken phase shows does not.
    assert!(
        carried(Phase::Healthy, "twilio-primary") + carried(Phase::Healthy, "twilio-backup") > 0,
        "{printed}"
    );
    assert_eq!(carried(Phase::Broken, "twilio-primary"), 0, "{printed}");
    assert!(carried(Phase::Broken, "twilio-backup") > 0, "{printed}");
    assert!(summary.failovers >= 1, "{printed}");
    assert!(
        printed.contains("primary answers HTTP 503") && printed.contains("summary"),
        "{printed}"
    );
}
