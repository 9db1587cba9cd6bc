//! The per-country delivery policy over loopback: what the receipts of Twilio and Vonage say
//! for each destination country, and what the handset journal says really reached the phone.

use std::time::Duration;

use serde_json::{Value, json};
use switchboard_sim::twilio::{RunningEmulator, TwilioAccount, TwilioEmulator};
use switchboard_sim::vonage::{VonageAccount, VonageEmulator};
use switchboard_sim::{CountryDelivery, Handset, HandsetReceipt, Receipts, SentCallback};

use crate::support::{self, Receiver};

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "emulator-token";
const GB: &str = "+447400123456";
const US: &str = "+14155550100";
/// Bounds every wait, so a missing receipt fails the test instead of hanging it.
const PATIENCE: Duration = Duration::from_secs(10);

async fn twilio() -> RunningEmulator {
    TwilioEmulator::start(TwilioAccount::new(SID, TOKEN)).await.unwrap()
}

/// Sends an SMS to `to` asking for status callbacks at `receiver`; answers the message sid.
async fn twilio_sms(twilio: &RunningEmulator, receiver: &Receiver, to: &str) -> String {
    let url = format!("{}/2010-04-01/Accounts/{SID}/Messages.json", twilio.base_url());
    let callback = format!("{}/status", receiver.base);
    let form = [("To", to), ("From", "+15005550006"), ("Body", "x"), ("StatusCallback", &callback)];
    let request = reqwest::Client::new().post(url).basic_auth(SID, Some(TOKEN)).form(&form);
    let (status, body) = support::exchange_json(request).await;
    assert_eq!(status, 201, "{body}");
    body["sid"].as_str().unwrap().to_owned()
}

async fn callbacks(twilio: &RunningEmulator, n: usize) -> Vec<SentCallback> {
    tokio::time::timeout(PATIENCE, twilio.wait_for_callbacks(n)).await.unwrap()
}

/// The last `MessageStatus` and `ErrorCode` Twilio reported for `sid`.
fn twilio_final(callbacks: &[SentCallback], sid: &str) -> (String, Option<String>) {
    let form: Vec<(String, String)> = callbacks
        .iter()
        .filter(|callback| callback.message_id == sid)
        .map(|callback| serde_urlencoded::from_str(&callback.request_body).unwrap())
        .next_back()
        .unwrap_or_else(|| panic!("no callback for {sid}"));
    let field = |name: &str| form.iter().find(|(key, _)| key == name).map(|(_, v)| v.clone());
    (field("MessageStatus").unwrap(), field("ErrorCode"))
}

fn handset<'a>(handsets: &'a [Handset], id: &str) -> &'a Handset {
    handsets.iter().find(|handset| handset.message_id == id).unwrap()
}

#[tokio::test]
async fn twilio_filters_gb_with_the_rules_code_while_us_is_delivered() {
    let twilio = twilio().await;
    let receiver = Receiver::start().await;
    twilio.set_receipts(
        Receipts::delivered()
            .with_rule(CountryDelivery::to(&["GB"]).delivered(0.0, &["30007"]))
            .with_rule(CountryDelivery::to(&["US"])),
    );
    let mut gb = Vec::new();
    let mut us = Vec::new();
    for _ in 0..3 {
        gb.push(twilio_sms(&twilio, &receiver, GB).await);
        us.push(twilio_sms(&twilio, &receiver, US).await);
    }
    // Two callbacks per message: `sent`, then the final status.
    let made = callbacks(&twilio, 12).await;
    let handsets = twilio.handsets();
    for sid in &gb {
        assert_eq!(twilio_final(&made, sid), ("undelivered".into(), Some("30007".into())));
        let handset = handset(&handsets, sid);
        assert_eq!((handset.country.as_deref(), handset.delivered), (Some("GB"), false));
        assert_eq!(handset.receipt, HandsetReceipt::Undelivered { code: "30007".into() });
    }
    for sid in &us {
        assert_eq!(twilio_final(&made, sid), ("delivered".into(), None));
        let handset = handset(&handsets, sid);
        assert_eq!((handset.country.as_deref(), handset.delivered), (Some("US"), true));
    }
}

#[tokio::test]
async fn twilio_lost_receipts_reach_the_handset_and_post_nothing() {
    let twilio = twilio().await;
    let receiver = Receiver::start().await;
    twilio.set_receipts(Receipts::delivered().with_rule(CountryDelivery::to(&["GB"]).lost(100.0)));
    let mut lost = Vec::new();
    for _ in 0..3 {
        lost.push(twilio_sms(&twilio, &receiver, GB).await);
    }
    // A US send falls back to "delivered"; its two callbacks arriving, and no others, show the
    // GB receipts were never posted rather than late (each send's task starts before its 201).
    let marker = twilio_sms(&twilio, &receiver, US).await;
    let made = callbacks(&twilio, 2).await;
    assert!(made.iter().all(|callback| callback.message_id == marker), "{made:?}");
    let handsets = twilio.handsets();
    assert_eq!(handsets.len(), 4);
    for sid in &lost {
        let handset = handset(&handsets, sid);
        assert!(handset.delivered && !handset.lying);
        assert_eq!(handset.receipt, HandsetReceipt::Lost);
    }
    assert_eq!(handset(&handsets, &marker).receipt, HandsetReceipt::Delivered);
}

#[tokio::test]
async fn twilio_lying_receipts_say_delivered_of_what_never_arrived() {
    let twilio = twilio().await;
    let receiver = Receiver::start().await;
    let rule = CountryDelivery::to(&["*"]).delivered(0.0, &["30007"]).lying(100.0);
    twilio.set_receipts(Receipts::none().with_rule(rule));
    let sids = [twilio_sms(&twilio, &receiver, GB).await, twilio_sms(&twilio, &receiver, US).await];
    let made = callbacks(&twilio, 4).await;
    let handsets = twilio.handsets();
    for sid in &sids {
        assert_eq!(twilio_final(&made, sid), ("delivered".into(), None));
        let handset = handset(&handsets, sid);
        assert!(!handset.delivered && handset.lying, "{handset:?}");
        assert_eq!(handset.receipt, HandsetReceipt::Delivered);
    }
}

/// Fates, in send order, of `n` GB sends under a half-and-half policy seeded `seed`, set and
/// read over HTTP as a harness would.
async fn seeded_fates(twilio: &RunningEmulator, receiver: &Receiver, seed: u64) -> Vec<Value> {
    let client = reqwest::Client::new();
    let handsets_url = format!("{}/__sim/handsets", twilio.base_url());
    assert_eq!(client.delete(&handsets_url).send().await.unwrap().status(), 204);
    let policy = json!({"delivery": [{"countries": ["GB"], "delivered_percent": 50,
        "codes": ["30003", "30005"], "lost_percent": 20, "lying_percent": 30}], "seed": seed});
    let put = client.put(format!("{}/__sim/receipts", twilio.base_url())).json(&policy);
    assert_eq!(put.send().await.unwrap().status(), 200);
    for _ in 0..30 {
        twilio_sms(twilio, receiver, GB).await;
    }
    let handsets: Vec<Value> =
        client.get(&handsets_url).send().await.unwrap().json().await.unwrap();
    assert_eq!(handsets.len(), 30);
    assert!(handsets.iter().all(|handset| handset["country"] == "GB"));
    handsets
        .into_iter()
        .map(|handset| json!([handset["delivered"], handset["receipt"], handset["lying"]]))
        .collect()
}

#[tokio::test]
async fn twilio_the_same_seed_gives_the_same_fates() {
    let twilio = twilio().await;
    let receiver = Receiver::start().await;
    let first = seeded_fates(&twilio, &receiver, 11).await;
    assert_eq!(first, seeded_fates(&twilio, &receiver, 11).await);
    assert_ne!(first, seeded_fates(&twilio, &receiver, 12).await);
    let delivered = first.iter().filter(|fate| fate[0] == true).count();
    assert!((5..=25).contains(&delivered), "a mix, not one fate: {delivered}");
}

#[tokio::test]
async fn a_bad_policy_gets_a_400_naming_the_field_and_changes_nothing() {
    let twilio = twilio().await;
    let client = reqwest::Client::new();
    let url = format!("{}/__sim/receipts", twilio.base_url());
    for (policy, field) in [
        (
            json!({"delivery": [{"countries": ["GB"], "delivered_percent": 101}]}),
            "delivered_percent",
        ),
        (json!({"delivery": [{"countries": ["GB"], "delivered_percent": 10}]}), "codes"),
        (
            json!({"delivery": [{"countries": ["*"]}, {"countries": ["GB"], "lost_percent": -1}]}),
            "delivery[1].lost_percent",
        ),
        (json!({"delivery": [{"countries": ["Britain"]}]}), "countries"),
    ] {
        let answer = client.put(&url).json(&policy).send().await.unwrap();
        assert_eq!(answer.status(), 400, "{policy}");
        let reason = answer.text().await.unwrap();
        assert!(reason.contains(field), "{reason} should name {field}");
    }
    assert_eq!(twilio.receipts(), Receipts::delivered(), "the policy in force is kept");
}

#[tokio::test]
async fn vonage_receipts_follow_the_country_rules() {
    let vonage = VonageEmulator::start(VonageAccount::new("abcd1234", "secret")).await.unwrap();
    let mut receiver = Receiver::start().await;
    vonage.set_receipts(
        Receipts::none()
            .with_rule(CountryDelivery::to(&["GB"]).delivered(0.0, &["6"]))
            .with_rule(CountryDelivery::to(&["DE"]).delivered(0.0, &["6"]).lying(100.0))
            .with_rule(CountryDelivery::to(&["US"])),
    );
    let callback = format!("{}/dlr", receiver.base);
    let mut expected = Vec::new();
    // Vonage takes numbers without the plus.
    for (to, status, err_code, delivered) in [
        ("447400123456", "failed", "6", false),
        ("4915112345678", "delivered", "0", false),
        ("14155550100", "delivered", "0", true),
    ] {
        let form = [
            ("api_key", "abcd1234"),
            ("api_secret", "secret"),
            ("from", "Acme"),
            ("to", to),
            ("text", "x"),
            ("callback", callback.as_str()),
        ];
        let answer: Value = reqwest::Client::new()
            .post(format!("{}/sms/json", vonage.base_url()))
            .form(&form)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = answer["messages"][0]["message-id"].as_str().unwrap().to_owned();
        let receipt = tokio::time::timeout(PATIENCE, receiver.next()).await.unwrap().json();
        assert_eq!(receipt["messageId"], id.as_str());
        assert_eq!(
            (receipt["status"].as_str(), receipt["err-code"].as_str()),
            (Some(status), Some(err_code)),
            "{to}"
        );
        expected.push((id, delivered));
    }
    let handsets = vonage.handsets();
    let truth: Vec<_> = handsets.iter().map(|h| (h.message_id.clone(), h.delivered)).collect();
    assert_eq!(truth, expected);
    let countries: Vec<_> = handsets.iter().map(|h| h.country.as_deref()).collect();
    assert_eq!(countries, [Some("GB"), Some("DE"), Some("US")]);
    assert!(handsets[1].lying && !handsets[0].lying && !handsets[2].lying);
}
