//! The request path on tokio's paused clock: admission, the deadline from arrival, shedding,
//! and background delivery against scripted providers. Virtual time makes the timing claims
//! exact, and every test runs in milliseconds of real time.

use std::time::Duration;

use tokio::time::Instant;

use crate::testing::{Config, Mode, metadata, okta_body, post, server, server_with, status};

const OK: Mode = Mode::Accept { latency: Duration::from_millis(100) };
const LIFE: Duration = Duration::from_secs(300);

/// Waits until every delivery, background ones included, has ended.
async fn drain(server: &crate::Server) {
    server.shared.tracker.close();
    server.shared.tracker.wait().await;
}

#[tokio::test(start_paused = true)]
async fn a_burst_against_a_dead_primary_reaches_the_backup_whatever_the_budget() {
    // The budget's floor and burst are tiny: failover must not draw on it.
    let extra = "[health.budget]\nmin_per_second = 0.1\nburst = 1\npercent = 0";
    let (server, primary, backup) = server(extra, Mode::Refuse, OK);
    let router = server.hook_router();
    let answers = futures::future::join_all((0..100).map(|i| {
        let body = okta_body(&format!("burst-{i}"), &format!("+1415555{i:04}"), LIFE);
        post(&router, body, None)
    }))
    .await;
    for (code, answer) in &answers {
        assert_eq!(*code, 200);
        assert_eq!(status(answer), "SUCCESSFUL");
    }
    drain(&server).await;
    let delivered: std::collections::HashSet<String> =
        backup.sends().into_iter().map(|(_, event)| event).collect();
    assert_eq!(delivered.len(), 100, "every code reached the backup");
    assert_eq!(backup.sends().len(), 100, "once each");
    assert!(primary.sends().len() <= 100);
    let metrics = server.shared.metrics.render();
    assert!(
        metrics.contains(
            r#"switchboard_deliveries_total{outcome="delivered",reason="-",channel="sms"} 100"#
        ),
        "{metrics}"
    );
}

#[tokio::test(start_paused = true)]
async fn waiting_codes_outlive_an_ejection_and_do_not_storm_the_dead_providers() {
    let (server, primary, backup) = server("", Mode::Refuse, Mode::Refuse);
    let router = server.hook_router();
    let started = Instant::now();
    for i in 0..20 {
        let body = okta_body(&format!("wait-{i}"), &format!("+1415555{i:04}"), LIFE);
        let (_, answer) = post(&router, body, None).await;
        assert_eq!(status(&answer), "SUCCESSFUL");
    }
    // Both are ejected after five failures each. A new code still fails open for its first
    // send (the user is waiting for it), but the twenty waiting codes do not each fail open:
    // across all of them, each provider sees one early trial a second.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let sends_after_answers = primary.sends().len() + backup.sends().len();
    assert!(sends_after_answers <= 2 * 5 + 20 + 4, "{sends_after_answers} sends");
    tokio::time::sleep(Duration::from_secs(17)).await;
    let sends_while_waiting = primary.sends().len() + backup.sends().len() - sends_after_answers;
    // 17 s: at most one early trial per provider per second, whatever the twenty codes do.
    assert!(sends_while_waiting <= 2 * (17 + 1), "{sends_while_waiting} sends while waiting");
    assert!(sends_while_waiting >= 17, "the providers were probed: {sends_while_waiting}");
    backup.set(OK);
    drain(&server).await;
    let delivered: std::collections::HashSet<String> = backup
        .sends()
        .into_iter()
        .filter(|(at, _)| *at >= started + Duration::from_secs(20))
        .map(|(_, event)| event)
        .collect();
    assert_eq!(delivered.len(), 20, "every waiting code went out once the backup came back");
    // The next early trial (about a second after the repair) brings the backup back, long
    // before its ejection (30 s) would have ended, and every waiting code follows it within
    // its backoff (at most 5 s).
    let after_repair: Vec<Instant> = backup
        .sends()
        .iter()
        .map(|(at, _)| *at)
        .filter(|at| *at >= started + Duration::from_secs(20))
        .collect();
    let (first, last) = (after_repair.iter().min().unwrap(), after_repair.iter().max().unwrap());
    assert!(*first <= started + Duration::from_millis(22_600), "{:?}", *first - started);
    assert!(*last <= *first + Duration::from_secs(5), "{:?}", *last - *first);
}

#[tokio::test(start_paused = true)]
async fn a_code_whose_other_providers_may_have_it_waits_for_the_ejected_one() {
    // The backup is ejected by a first code's failures; the primary then hangs on a second
    // code. Nothing is left but a provider that may have the message: the code does not give
    // up, and an early trial of the ejected backup delivers it within seconds.
    let (server, primary, backup) =
        server("[health]\nconsecutive_failures = 1", Mode::Refuse, Mode::Refuse);
    let router = server.hook_router();
    post(&router, okta_body("first", "+14155550100", LIFE), None).await;
    primary.set(Mode::Hang);
    backup.set(OK);
    let started = Instant::now();
    let (_, answer) = post(&router, okta_body("second", "+14155550199", LIFE), None).await;
    assert_eq!(status(&answer), "SUCCESSFUL");
    drain(&server).await;
    let second: Vec<Instant> =
        backup.sends().into_iter().filter(|(_, e)| e == "second").map(|(at, _)| at).collect();
    assert_eq!(second.len(), 1, "delivered by the backup once it came back");
    assert!(second[0] <= started + Duration::from_secs(4), "{:?}", second[0] - started);
    let metrics = server.shared.metrics.render();
    assert!(
        metrics.contains(
            r#"switchboard_deliveries_total{outcome="delivered",reason="-",channel="sms"} 2"#
        ),
        "the first code, refused by both, waited too and went out after the ejections: {metrics}"
    );
    assert!(!metrics.contains(r#"outcome="undelivered""#), "{metrics}");
}

#[tokio::test(start_paused = true)]
async fn the_answer_deadline_runs_from_the_first_byte() {
    let (server, _, _) = server("", Mode::Hang, Mode::Hang);
    let router = server.hook_router();
    // The request's first byte arrived 1 s ago (a slow body, a busy runtime).
    let arrival = Instant::now();
    tokio::time::advance(Duration::from_secs(1)).await;
    let (_, answer) =
        post(&router, okta_body("late-body", "+14155550100", LIFE), Some(arrival)).await;
    assert_eq!(
        Instant::now() - arrival,
        Duration::from_millis(2_400),
        "published 100 ms before the 2,500 ms deadline, so it is on the wire by then"
    );
    assert_eq!(metadata(&answer, "outcome"), "pending");
}

#[tokio::test(start_paused = true)]
async fn past_the_in_flight_limit_requests_are_answered_at_once_and_nothing_is_sent() {
    let (server, primary, backup) = server_with(
        Config { server: "max_in_flight = 2", ..Config::default() },
        Mode::Hang,
        Mode::Hang,
    );
    let router = server.hook_router();
    // Two requests hold the only two slots (their providers hang); a third is shed.
    let holding: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|id| {
            let router = router.clone();
            tokio::spawn(
                async move { post(&router, okta_body(id, "+14155550100", LIFE), None).await },
            )
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(10)).await;
    let before = Instant::now();
    let (code, answer) = post(&router, okta_body("c", "+14155550111", LIFE), None).await;
    assert_eq!(Instant::now(), before, "answered at once");
    assert_eq!(code, 200);
    assert_eq!(status(&answer), "FAILED", "Okta's own providers send this one");
    assert_eq!(metadata(&answer, "refused"), "overloaded");
    assert_eq!(metadata(&answer, "reason"), "in_flight");
    for held in holding {
        let (_, answer) = held.await.unwrap();
        assert_eq!(status(&answer), "SUCCESSFUL");
    }
    // Once they are answered, the slots are free again.
    let (_, answer) = post(&router, okta_body("d", "+14155550122", LIFE), None).await;
    assert_eq!(status(&answer), "SUCCESSFUL");
    let sent: Vec<String> =
        primary.sends().into_iter().chain(backup.sends()).map(|(_, e)| e).collect();
    assert!(!sent.contains(&"c".to_owned()), "the shed request sent nothing");
    assert!(
        server
            .shared
            .metrics
            .render()
            .contains(r#"switchboard_hook_shed_total{reason="in_flight"} 1"#)
    );
}

#[tokio::test(start_paused = true)]
async fn a_request_that_queued_for_half_its_deadline_is_shed_with_the_configured_answer() {
    let (server, primary, _) =
        server_with(Config { okta: "shed_answer = \"retry\"", ..Config::default() }, OK, OK);
    let router = server.hook_router();
    let arrival = Instant::now();
    tokio::time::advance(Duration::from_millis(1_300)).await;
    let (code, answer) =
        post(&router, okta_body("queued", "+14155550100", LIFE), Some(arrival)).await;
    assert_eq!(code, 503, "Okta retries once, perhaps on another replica");
    assert_eq!(answer["error"]["errorCauses"][0]["reason"], "OVERLOADED");
    assert!(primary.sends().is_empty());
}

#[tokio::test(start_paused = true)]
async fn running_deliveries_bound_memory_by_shedding_new_requests() {
    let (server, _, _) = server_with(
        Config { server: "max_deliveries = 3", ..Config::default() },
        Mode::Refuse,
        Mode::Refuse,
    );
    let router = server.hook_router();
    for i in 0..3 {
        let (_, answer) =
            post(&router, okta_body(&format!("bg-{i}"), "+14155550100", LIFE), None).await;
        assert_eq!(status(&answer), "SUCCESSFUL", "answered; delivery goes on in the background");
    }
    let (_, answer) = post(&router, okta_body("bg-3", "+14155550100", LIFE), None).await;
    assert_eq!(status(&answer), "FAILED");
    assert_eq!(metadata(&answer, "reason"), "deliveries");
}

#[tokio::test(start_paused = true)]
async fn an_event_far_from_our_clock_is_refused_as_a_replay() {
    let (server, primary, _) =
        server_with(Config { okta: "event_time_tolerance_s = 60", ..Config::default() }, OK, OK);
    let router = server.hook_router();
    for offset in [-61i64, 61] {
        let mut body: serde_json::Value =
            serde_json::from_str(&okta_body("replayed", "+14155550100", LIFE)).unwrap();
        let when = time::OffsetDateTime::now_utc() + time::Duration::seconds(offset);
        body["eventTime"] =
            when.format(&time::format_description::well_known::Rfc3339).unwrap().into();
        let (code, answer) = post(&router, body.to_string(), None).await;
        assert_eq!(code, 200);
        assert_eq!(status(&answer), "FAILED");
        assert_eq!(metadata(&answer, "refused"), "event_time");
    }
    assert!(primary.sends().is_empty());
    let (_, answer) = post(&router, okta_body("fresh", "+14155550100", LIFE), None).await;
    assert_eq!(status(&answer), "SUCCESSFUL");
}

#[tokio::test(start_paused = true)]
async fn explain_refuses_exactly_the_numbers_the_hook_refuses() {
    let guard = "mode = \"enforce\"\n[guard.sms]\nallow_countries = [\"US\", \"GB\"]\nper_number = \"1000/1h\"\nper_prefix = \"1000/1h\"\nper_user = \"1000/1h\"\nper_ip = \"1000/1h\"\nper_country = \"1000/1h\"";
    let (server, primary, backup) = server_with(Config { guard, ..Config::default() }, OK, OK);
    let router = server.hook_router();
    let numbers = [
        ("+14155550100", false),  // a US number
        ("+442079460123", false), // a London landline
        ("+33612345678", true),   // France: not on the allow-list
        ("+19005550100", true),   // US premium rate: no OTP to such lines
        ("+19995550100", true),   // +1 area code no NANP country has: country unknown
        ("+18765550100", true),   // Jamaica, by its area code: not on the allow-list
    ];
    for (index, (number, is_refused)) in numbers.into_iter().enumerate() {
        let query = crate::explain::ExplainQuery {
            number: number.to_owned(),
            channel: switchboard_core::Channel::Sms,
            purpose: None,
        };
        let (text, json) = crate::explain::explain_live(&server.shared, &query).unwrap();
        let event = format!("explain-{index}");
        let before = primary.sends().len() + backup.sends().len();
        let (_, answer) = post(&router, okta_body(&event, number, LIFE), None).await;
        let sent = primary.sends().len() + backup.sends().len() > before;
        let hook_refused = !metadata(&answer, "refused").is_empty();
        assert_eq!(hook_refused, is_refused, "{number}: {answer}");
        assert_eq!(sent, !is_refused, "{number}");
        assert_eq!(json.get("refused").is_some(), is_refused, "{number}: {text}");
        assert_eq!(text.contains("chosen"), !is_refused, "{number}: {text}");
        assert!(!text.contains(&number[2..]), "explain never prints the number: {text}");
    }
}

#[tokio::test(start_paused = true)]
async fn the_answer_goes_out_before_the_margin_while_a_slow_provider_still_delivers() {
    let slow = Mode::Accept { latency: Duration::from_secs(5) };
    let (server, primary, backup) = server("", slow, OK);
    let router = server.hook_router();
    let arrival = Instant::now();
    let (_, answer) = post(&router, okta_body("slow", "+14155550100", LIFE), None).await;
    assert_eq!(Instant::now() - arrival, Duration::from_millis(2_400), "100 ms before 2,500 ms");
    assert_eq!(status(&answer), "SUCCESSFUL");
    assert_eq!(metadata(&answer, "outcome"), "pending");
    drain(&server).await;
    assert_eq!(Instant::now() - arrival, Duration::from_secs(5), "the send went on to its end");
    assert_eq!(primary.sends().len(), 1);
    assert!(backup.sends().is_empty(), "no failover from a send still running");
    assert!(server.shared.metrics.render().contains(
        r#"switchboard_deliveries_total{outcome="delivered",reason="-",channel="sms"} 1"#
    ));
}

#[tokio::test(start_paused = true)]
async fn a_repeated_event_gets_the_first_answer_and_sends_nothing_more() {
    let (server, primary, backup) = server("", OK, OK);
    let router = server.hook_router();
    let body = okta_body("twice", "+14155550100", LIFE);
    let (_, first) = post(&router, body.clone(), None).await;
    let (_, second) = post(&router, body, None).await;
    assert_eq!(first, second);
    assert_eq!(metadata(&first, "outcome"), "delivered");
    assert_eq!(primary.sends().len() + backup.sends().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn truthful_reporting_answers_failed_once_every_provider_refused() {
    let (server, primary, backup) = server_with(
        Config { okta: "report = \"truthful\"", ..Config::default() },
        Mode::Refuse,
        Mode::Refuse,
    );
    let router = server.hook_router();
    let arrival = Instant::now();
    let (_, answer) = post(&router, okta_body("truth", "+14155550100", LIFE), None).await;
    assert_eq!(Instant::now(), arrival, "answered as soon as the pass failed");
    assert_eq!(status(&answer), "FAILED", "Okta's own providers send it");
    assert_eq!(metadata(&answer, "outcome"), "undelivered_all_failed");
    assert_eq!(metadata(&answer, "attempts"), "2");
    drain(&server).await;
    assert_eq!((primary.sends().len(), backup.sends().len()), (1, 1), "nothing after answering");
}
