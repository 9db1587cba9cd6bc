//! The demo, short: the primary breaks, the backup carries every request while it is broken (or,
//! when only one country's receipts say it filters, that country's), and every answer comes back
//! SUCCESSFUL. (Latency is the benchmarks' business, not a test's.)

use switchboard::demo::{DemoFault, DemoOptions, FILTERED_COUNTRY, Phase, run};

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

/// With `--fault filtering` the primary's API never fails: only its receipts say that one
/// country's messages are filtered. That country moves to the backup within a few receipts,
/// while the others stay on the primary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filtering_moves_one_country_to_the_backup_and_keeps_the_others() {
    let _turn = crate::WALL_CLOCK.lock().await;
    let mut out = Vec::new();
    // 10 s at 40 a second: the primary filters from 3 s to 6.5 s, some 28 sends to the filtered
    // country (the demo scales the receipts' half-life to the rate, so it takes as many sends
    // to move as at the default rate).
    let options = DemoOptions { duration_s: 10, rate: 40, fault: DemoFault::Filtering };
    let summary = run(options, &mut out).await.unwrap();
    let printed = String::from_utf8(out).unwrap();

    assert_eq!(summary.answers.get("SUCCESSFUL").copied(), Some(summary.sent), "{printed}");
    let sends = &summary.filtered_sends;
    let on = |provider: &str| Some(provider.to_owned());
    let last_on_primary = sends.iter().rposition(|carrier| *carrier == on("twilio-primary"));
    // The primary carried the first few (until their receipts came back and outweighed its
    // good history), and nothing after about a dozen sends (20 at most); every later one went
    // to the backup.
    let moved_after = last_on_primary.map_or(0, |index| index + 1);
    assert!(moved_after <= 20, "{moved_after} sends before the move: {sends:?}\n{printed}");
    let after = &sends[moved_after..];
    assert!(after.len() >= 4, "too few sends after the move to tell: {sends:?}\n{printed}");
    assert!(after.iter().all(|carrier| *carrier == on("twilio-backup")), "{sends:?}\n{printed}");
    // Another country, all SMS, stayed on the primary while the filtered one moved.
    let carried = |country: &str, provider: &str| {
        let key = (Phase::Broken, country.to_owned(), provider.to_owned());
        summary.carried_by_country.get(&key).copied().unwrap_or(0)
    };
    assert_ne!(FILTERED_COUNTRY, "FR");
    let (primary, backup) = (carried("FR", "twilio-primary"), carried("FR", "twilio-backup"));
    assert!(primary >= 10 && primary >= 4 * backup, "FR {primary}/{backup}\n{printed}");
    assert!(printed.contains("by country  US "), "the view shows sends per country: {printed}");
}
