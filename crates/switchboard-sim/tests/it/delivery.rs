//! The per-country delivery policy over loopback: what each provider's receipts say for each
//! destination country, in that provider's own wire format, and what the handset journal says
//! really reached the phone.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use hmac::Mac;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use switchboard_sim::infobip::{InfobipAccount, InfobipEmulator};
use switchboard_sim::plivo::{PlivoAccount, PlivoEmulator, RunningEmulator as PlivoRunning};
use switchboard_sim::sinch::{RunningEmulator as SinchRunning, SinchAccount, SinchEmulator};
use switchboard_sim::telesign::{
    RunningEmulator as TelesignRunning, TelesignAccount, TelesignEmulator,
};
use switchboard_sim::twilio::{RunningEmulator, TwilioAccount, TwilioEmulator};
use switchboard_sim::vonage::{
    TEST_PRIVATE_KEY_PEM, TEST_PUBLIC_KEY_PEM, VonageAccount, VonageEmulator,
};
use switchboard_sim::{
    CallbackApi, CallbackKind, CountryDelivery, Handset, HandsetReceipt, Receipts, Running,
    SentCallback,
};

use crate::support::{self, Receiver};

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "emulator-token";
const GB: &str = "+447400123456";
const US: &str = "+14155550100";
const DE: &str = "+4915123456789";
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

// ---------------------------------------------------------------------------------------------
// The same three-country policy for every other provider, read back in its own receipt format.

/// GB is never delivered and its receipts carry `code`; DE is never delivered but its receipts
/// lie and say "delivered"; US is delivered.
fn three_countries(code: &str) -> Receipts {
    Receipts::none()
        .with_rule(CountryDelivery::to(&["GB"]).delivered(0.0, &[code]))
        .with_rule(CountryDelivery::to(&["DE"]).delivered(0.0, &[code]).lying(100.0))
        .with_rule(CountryDelivery::to(&["US"]))
}

/// `number` without its plus, as Vonage, Telesign, Infobip and Plivo take it.
fn bare(number: &str) -> &str {
    number.strip_prefix('+').unwrap()
}

/// Waits for `n` callbacks to the sends `ids` (to GB, DE and US, in that order, under
/// [`three_countries`] of `code`); checks the handset journal holds exactly those sends with the
/// fates the policy decides, and answers the body of each send's receipt, in order.
async fn three_receipts<A: CallbackApi>(
    emulator: &Running<A>,
    ids: &[String; 3],
    code: &str,
    n: usize,
) -> [String; 3] {
    let made = tokio::time::timeout(PATIENCE, emulator.wait_for_callbacks(n)).await.unwrap();
    assert_eq!(made.len(), n, "{made:?}");
    let handsets = emulator.handsets();
    assert_eq!(handsets.len(), 3, "{handsets:?}");
    let fates = [
        (Some("GB"), false, HandsetReceipt::Undelivered { code: code.into() }, false),
        (Some("DE"), false, HandsetReceipt::Delivered, true),
        (Some("US"), true, HandsetReceipt::Delivered, false),
    ];
    for (id, fate) in ids.iter().zip(fates) {
        let handset = handset(&handsets, id);
        let got =
            (handset.country.as_deref(), handset.delivered, handset.receipt.clone(), handset.lying);
        assert_eq!(got, fate, "{id}");
    }
    ids.clone().map(|id| {
        let receipts: Vec<_> = made
            .iter()
            .filter(|callback| callback.message_id == id && callback.kind == CallbackKind::Receipt)
            .collect();
        assert_eq!(receipts.len(), 1, "one receipt for {id}: {made:?}");
        assert_eq!(receipts[0].status, Some(200), "{:?}", receipts[0]);
        receipts[0].request_body.clone()
    })
}

fn json_of(body: &str) -> Value {
    serde_json::from_str(body).unwrap()
}

/// Three iterators in step.
fn zip3<A, B, C>(
    a: impl IntoIterator<Item = A>,
    b: impl IntoIterator<Item = B>,
    c: impl IntoIterator<Item = C>,
) -> impl Iterator<Item = (A, B, C)> {
    a.into_iter().zip(b).zip(c).map(|((a, b), c)| (a, b, c))
}

/// Field `name` of a form body.
fn form_field(body: &str, name: &str) -> Option<String> {
    let form: Vec<(String, String)> = serde_urlencoded::from_str(body).unwrap();
    form.into_iter().find(|(key, _)| key == name).map(|(_, value)| value)
}

#[tokio::test]
async fn sinch_reports_carry_the_decided_status_and_code() {
    let sinch =
        SinchEmulator::start(SinchAccount::new("plan1", "token", "key", "c2VjcmV0")).await.unwrap();
    let receiver = Receiver::start().await;
    sinch.set_receipts(three_countries("402"));
    let mut ids = Vec::new();
    for to in [GB, DE, US] {
        let batch = json!({"to": [to], "from": "+15005550006", "body": "x",
            "delivery_report": "per_recipient", "callback_url": format!("{}/dlr", receiver.base)});
        let request = reqwest::Client::new()
            .post(format!("{}/xms/v1/plan1/batches", sinch.base_url()))
            .bearer_auth("token")
            .json(&batch);
        let (status, body) = support::exchange_json(request).await;
        assert_eq!(status, 201, "{body}");
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    let ids: [String; 3] = ids.try_into().unwrap();
    let reports = three_receipts(&sinch, &ids, "402", 3).await;
    for (report, to, (status, code)) in
        zip3(&reports, [GB, DE, US], [("Failed", 402), ("Delivered", 0), ("Delivered", 0)])
    {
        let report = json_of(report);
        assert_eq!(report["type"], "recipient_delivery_report_sms");
        assert_eq!(report["recipient"], to);
        assert_eq!(
            (report["status"].as_str(), report["code"].as_u64()),
            (Some(status), Some(code))
        );
    }
}

#[tokio::test]
async fn sinch_dice_events_carry_the_decided_result() {
    let sinch =
        SinchEmulator::start(SinchAccount::new("plan1", "token", "key", "c2VjcmV0")).await.unwrap();
    let receiver = Receiver::start().await;
    sinch.set_voice_callback_url(Some(format!("{}/voice", receiver.base)));
    sinch.set_receipts(three_countries("NOANSWER"));
    let mut ids = Vec::new();
    for to in [GB, DE, US] {
        let callout = json!({"method": "ttsCallout", "ttsCallout": {"cli": "+15005550006",
            "destination": {"type": "number", "endpoint": to}, "text": "1, 2, 3",
            "locale": "en-US", "enableDice": true}});
        let request = reqwest::Client::new()
            .post(format!("{}/calling/v1/callouts", sinch.base_url()))
            .basic_auth("key", Some("c2VjcmV0"))
            .json(&callout);
        let (status, body) = support::exchange_json(request).await;
        assert_eq!(status, 200, "{body}");
        ids.push(body["callId"].as_str().unwrap().to_owned());
    }
    let ids: [String; 3] = ids.try_into().unwrap();
    let events = three_receipts(&sinch, &ids, "NOANSWER", 3).await;
    for (event, to, (result, reason)) in zip3(
        &events,
        [GB, DE, US],
        [
            ("NOANSWER", "CALLEENOTAVAILABLE"),
            ("ANSWERED", "CALLEEHANGUP"),
            ("ANSWERED", "CALLEEHANGUP"),
        ],
    ) {
        let event = json_of(event);
        assert_eq!(event["event"], "dice");
        assert_eq!(event["to"]["endpoint"], to);
        assert_eq!(
            (event["result"].as_str(), event["reason"].as_str()),
            (Some(result), Some(reason))
        );
    }
}

const TELESIGN_CUSTOMER: &str = "FFFFFFFF-EEEE-DDDD-1234-AB1234567890";
/// base64("signing-key-for-tests").
const TELESIGN_KEY: &str = "c2lnbmluZy1rZXktZm9yLXRlc3Rz";

/// Signs and posts `body` to Telesign's `/v1/messaging` as its SDK does, with `nonce`;
/// answers the reference id.
async fn telesign_sms(telesign: &TelesignRunning, body: &str, nonce: &str) -> String {
    let content_type = "application/x-www-form-urlencoded";
    let date = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
        ))
        .unwrap();
    let string_to_sign = format!(
        "POST\n{content_type}\n{date}\nx-ts-auth-method:HMAC-SHA256\nx-ts-nonce:{nonce}\n{body}\n/v1/messaging"
    );
    let key = base64::engine::general_purpose::STANDARD.decode(TELESIGN_KEY).unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(string_to_sign.as_bytes());
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let request = reqwest::Client::new()
        .post(format!("{}/v1/messaging", telesign.base_url()))
        .header("Authorization", format!("TSA {TELESIGN_CUSTOMER}:{signature}"))
        .header("Content-Type", content_type)
        .header("Date", date)
        .header("x-ts-auth-method", "HMAC-SHA256")
        .header("x-ts-nonce", nonce)
        .body(body.to_owned());
    let (status, answer) = support::exchange_json(request).await;
    assert_eq!((status, answer["status"]["code"].as_i64()), (200, Some(290)), "{answer}");
    answer["reference_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn telesign_receipts_carry_the_decided_status_code() {
    let telesign = TelesignEmulator::start(TelesignAccount::new(TELESIGN_CUSTOMER, TELESIGN_KEY))
        .await
        .unwrap();
    let receiver = Receiver::start().await;
    telesign.set_receipts(three_countries("211"));
    let mut ids = Vec::new();
    for (index, to) in [GB, DE, US].into_iter().enumerate() {
        let body = serde_urlencoded::to_string([
            ("phone_number", bare(to)),
            ("message", "Your code is 1234"),
            ("message_type", "OTP"),
            ("callback_url", &format!("{}/telesign", receiver.base)),
        ])
        .unwrap();
        let nonce = format!("2b2e1f5a-0c1d-4c1e-9a4b-00000000000{index}");
        ids.push(telesign_sms(&telesign, &body, &nonce).await);
    }
    let ids: [String; 3] = ids.try_into().unwrap();
    let receipts = three_receipts(&telesign, &ids, "211", 3).await;
    for (receipt, id, (code, description)) in zip3(
        &receipts,
        &ids,
        [(211, "Not delivered"), (200, "Delivered to handset"), (200, "Delivered to handset")],
    ) {
        let receipt = json_of(receipt);
        assert_eq!(
            (receipt["reference_id"].as_str(), receipt["sub_resource"].as_str()),
            (Some(id.as_str()), Some("sms"))
        );
        let status = &receipt["status"];
        assert_eq!(
            (status["code"].as_i64(), status["description"].as_str()),
            (Some(code), Some(description))
        );
    }
}

#[tokio::test]
async fn infobip_reports_carry_the_decided_status_and_error() {
    let infobip = InfobipEmulator::start(InfobipAccount::new("emulator-api-key")).await.unwrap();
    let receiver = Receiver::start().await;
    infobip.set_receipts(three_countries("14"));
    let mut ids = Vec::new();
    for to in [GB, DE, US] {
        let body = json!({"messages": [{"destinations": [{"to": bare(to)}], "content": {"text": "x"},
            "webhooks": {"delivery": {"url": format!("{}/reports", receiver.base)}}}]});
        let request = reqwest::Client::new()
            .post(format!("{}/sms/3/messages", infobip.base_url()))
            .header("Authorization", "App emulator-api-key")
            .json(&body);
        let (status, answer) = support::exchange_json(request).await;
        assert_eq!(status, 200, "{answer}");
        ids.push(answer["messages"][0]["messageId"].as_str().unwrap().to_owned());
    }
    let ids: [String; 3] = ids.try_into().unwrap();
    let reports = three_receipts(&infobip, &ids, "14", 3).await;
    for (report, to, (status_id, group, error_id)) in zip3(
        &reports,
        [GB, DE, US],
        [(14, "REJECTED", 27), (5, "DELIVERED", 0), (5, "DELIVERED", 0)],
    ) {
        let result = &json_of(report)["results"][0];
        assert_eq!(result["to"], bare(to));
        assert_eq!(
            (result["status"]["id"].as_u64(), result["status"]["groupName"].as_str()),
            (Some(status_id), Some(group)),
            "{to}"
        );
        assert_eq!(result["error"]["id"].as_u64(), Some(error_id), "{to}");
    }
}

async fn plivo_post(plivo: &PlivoRunning, resource: &str, body: &Value) -> Value {
    let request = reqwest::Client::new()
        .post(format!("{}/v1/Account/{PLIVO_ID}/{resource}/", plivo.base_url()))
        .basic_auth(PLIVO_ID, Some(PLIVO_TOKEN))
        .json(body);
    let (status, answer) = support::exchange_json(request).await;
    assert!(status == 201 || status == 202, "{status} {answer}");
    answer
}

const PLIVO_ID: &str = "MAXXXXXXXXXXXXXXXXXX";
const PLIVO_TOKEN: &str = "emulator-auth-token";

#[tokio::test]
async fn plivo_sms_statuses_carry_the_decided_status_and_error_code() {
    let plivo = PlivoEmulator::start(PlivoAccount::new(PLIVO_ID, PLIVO_TOKEN)).await.unwrap();
    let receiver = Receiver::start().await;
    plivo.set_receipts(three_countries("30"));
    let mut ids = Vec::new();
    for to in [GB, DE, US] {
        let sms = json!({"src": "+15005550006", "dst": bare(to), "text": "x",
            "url": format!("{}/plivo", receiver.base)});
        let answer = plivo_post(&plivo, "Message", &sms).await;
        ids.push(answer["message_uuid"][0].as_str().unwrap().to_owned());
    }
    let ids: [String; 3] = ids.try_into().unwrap();
    let statuses = three_receipts(&plivo, &ids, "30", 3).await;
    for (body, to, expected) in zip3(
        &statuses,
        [GB, DE, US],
        [("undelivered", Some("30")), ("delivered", None), ("delivered", None)],
    ) {
        assert_eq!(form_field(body, "To").as_deref(), Some(bare(to)));
        let got = (form_field(body, "Status"), form_field(body, "ErrorCode"));
        assert_eq!(got, (Some(expected.0.into()), expected.1.map(String::from)), "{to}");
    }
}

#[tokio::test]
async fn plivo_calls_fetch_only_when_answered_and_hang_up_as_decided() {
    let plivo = PlivoEmulator::start(PlivoAccount::new(PLIVO_ID, PLIVO_TOKEN)).await.unwrap();
    let receiver = Receiver::start().await;
    plivo.set_receipts(three_countries("3010"));
    let mut ids = Vec::new();
    for to in [GB, DE, US] {
        let call = json!({"from": "+15005550006", "to": bare(to),
            "answer_url": format!("{}/answer", receiver.base),
            "hangup_url": format!("{}/hangup", receiver.base)});
        let answer = plivo_post(&plivo, "Call", &call).await;
        ids.push(answer["request_uuid"].as_str().unwrap().to_owned());
    }
    let ids: [String; 3] = ids.try_into().unwrap();
    // Three hangups and one answer fetch: only the US call was answered.
    let hangups = three_receipts(&plivo, &ids, "3010", 4).await;
    let fetched: Vec<_> = plivo
        .callbacks()
        .into_iter()
        .filter(|callback| callback.kind == CallbackKind::AnswerFetch)
        .map(|callback| callback.message_id)
        .collect();
    assert_eq!(fetched, [ids[2].clone()]);
    for (body, to, expected) in zip3(
        &hangups,
        [GB, DE, US],
        [("no-answer", "3010"), ("completed", "4000"), ("completed", "4000")],
    ) {
        let got = (form_field(body, "CallStatus"), form_field(body, "HangupCauseCode"));
        assert_eq!(got, (Some(expected.0.into()), Some(expected.1.into())), "{to}");
    }
}

#[tokio::test]
async fn vonage_call_events_carry_the_decided_status() {
    const APP: &str = "aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab";
    let account =
        VonageAccount::new("abcd1234", "secret").with_application(APP, TEST_PUBLIC_KEY_PEM);
    let vonage = VonageEmulator::start(account).await.unwrap();
    let receiver = Receiver::start().await;
    vonage.set_receipts(three_countries("busy"));
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let claims = json!({"application_id": APP, "iat": now, "exp": now + 60, "jti": "7e1d"});
    let key = EncodingKey::from_rsa_pem(TEST_PRIVATE_KEY_PEM.as_bytes()).unwrap();
    let token = jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &key).unwrap();
    let mut ids = Vec::new();
    for to in [GB, DE, US] {
        let call = json!({
            "to": [{"type": "phone", "number": bare(to)}],
            "from": {"type": "phone", "number": "14155550199"},
            "ncco": [{"action": "talk", "text": "1, 2, 3", "language": "en-GB"}],
            "event_url": [format!("{}/event", receiver.base)],
        });
        let request = reqwest::Client::new()
            .post(format!("{}/v1/calls", vonage.base_url()))
            .bearer_auth(&token)
            .json(&call);
        let (status, answer) = support::exchange_json(request).await;
        assert_eq!(status, 201, "{answer}");
        ids.push(answer["uuid"].as_str().unwrap().to_owned());
    }
    let ids: [String; 3] = ids.try_into().unwrap();
    let events = three_receipts(&vonage, &ids, "busy", 3).await;
    for (event, to, status) in zip3(&events, [GB, DE, US], ["busy", "answered", "answered"]) {
        let event = json_of(event);
        assert_eq!(event["to"], bare(to));
        assert_eq!(event["status"].as_str(), Some(status), "{to}");
    }
}

// ---------------------------------------------------------------------------------------------
// Sends that asked for no receipt still reach the phone, or not, as the policy says.

/// GB is never delivered (its receipts would carry `code`); every other country is.
fn gb_filtered(code: &str) -> Receipts {
    Receipts::delivered().with_rule(CountryDelivery::to(&["GB"]).delivered(0.0, &[code]))
}

/// The handset journal holds exactly `ids`, in order, the first to GB and undelivered, the
/// second to the US and delivered, neither with a receipt.
fn assert_unreported(handsets: &[Handset], ids: &[String; 2]) {
    let got: Vec<_> = handsets
        .iter()
        .map(|h| (h.message_id.as_str(), h.country.as_deref(), h.delivered, &h.receipt, h.lying))
        .collect();
    let none = HandsetReceipt::None;
    let expected = [
        (ids[0].as_str(), Some("GB"), false, &none, false),
        (&ids[1], Some("US"), true, &none, false),
    ];
    assert_eq!(got, expected);
}

#[tokio::test]
async fn twilio_sends_without_a_status_callback_get_a_fate_and_post_nothing() {
    let twilio = twilio().await;
    let receiver = Receiver::start().await;
    twilio.set_receipts(gb_filtered("30007"));
    let mut unasked = Vec::new();
    for to in [GB, US] {
        let url = format!("{}/2010-04-01/Accounts/{SID}/Messages.json", twilio.base_url());
        let form = [("To", to), ("From", "+15005550006"), ("Body", "x")];
        let request = reqwest::Client::new().post(url).basic_auth(SID, Some(TOKEN)).form(&form);
        let (status, body) = support::exchange_json(request).await;
        assert_eq!(status, 201, "{body}");
        unasked.push(body["sid"].as_str().unwrap().to_owned());
    }
    // A send that asks: its two callbacks, and no others, show the others posted nothing.
    let marker = twilio_sms(&twilio, &receiver, US).await;
    let made = callbacks(&twilio, 2).await;
    assert!(made.iter().all(|callback| callback.message_id == marker), "{made:?}");
    let handsets = twilio.handsets();
    assert_unreported(&handsets[..2], &unasked.try_into().unwrap());
    assert_eq!(handsets[2].receipt, HandsetReceipt::Delivered);
}

#[tokio::test]
async fn every_other_provider_decides_the_fate_of_sends_that_asked_for_no_receipt() {
    let client = reqwest::Client::new();

    let vonage = VonageEmulator::start(VonageAccount::new("abcd1234", "secret")).await.unwrap();
    vonage.set_receipts(gb_filtered("6"));
    let mut ids = Vec::new();
    for to in [GB, US] {
        let form = [
            ("api_key", "abcd1234"),
            ("api_secret", "secret"),
            ("from", "Acme"),
            ("to", bare(to)),
            ("text", "x"),
        ];
        let request = client.post(format!("{}/sms/json", vonage.base_url())).form(&form);
        let (status, answer) = support::exchange_json(request).await;
        assert_eq!(status, 200, "{answer}");
        ids.push(answer["messages"][0]["message-id"].as_str().unwrap().to_owned());
    }
    assert_unreported(&vonage.handsets(), &ids.try_into().unwrap());

    let telesign = TelesignEmulator::start(TelesignAccount::new(TELESIGN_CUSTOMER, TELESIGN_KEY))
        .await
        .unwrap();
    telesign.set_receipts(gb_filtered("211"));
    let mut ids = Vec::new();
    for (index, to) in [GB, US].into_iter().enumerate() {
        let body = serde_urlencoded::to_string([
            ("phone_number", bare(to)),
            ("message", "Your code is 1234"),
            ("message_type", "OTP"),
        ])
        .unwrap();
        let nonce = format!("7c2e1f5a-0c1d-4c1e-9a4b-00000000000{index}");
        ids.push(telesign_sms(&telesign, &body, &nonce).await);
    }
    assert_unreported(&telesign.handsets(), &ids.try_into().unwrap());

    let infobip = InfobipEmulator::start(InfobipAccount::new("emulator-api-key")).await.unwrap();
    infobip.set_receipts(gb_filtered("14"));
    let mut ids = Vec::new();
    for to in [GB, US] {
        let body = json!({"messages": [{"destinations": [{"to": bare(to)}],
            "content": {"text": "x"}}]});
        let request = client
            .post(format!("{}/sms/3/messages", infobip.base_url()))
            .header("Authorization", "App emulator-api-key")
            .json(&body);
        let (status, answer) = support::exchange_json(request).await;
        assert_eq!(status, 200, "{answer}");
        ids.push(answer["messages"][0]["messageId"].as_str().unwrap().to_owned());
    }
    assert_unreported(&infobip.handsets(), &ids.try_into().unwrap());

    let plivo = PlivoEmulator::start(PlivoAccount::new(PLIVO_ID, PLIVO_TOKEN)).await.unwrap();
    plivo.set_receipts(gb_filtered("30"));
    let mut ids = Vec::new();
    for to in [GB, US] {
        let sms = json!({"src": "+15005550006", "dst": bare(to), "text": "x"});
        ids.push(
            plivo_post(&plivo, "Message", &sms).await["message_uuid"][0]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_unreported(&plivo.handsets(), &ids.try_into().unwrap());

    let sinch =
        SinchEmulator::start(SinchAccount::new("plan1", "token", "key", "c2VjcmV0")).await.unwrap();
    sinch.set_receipts(gb_filtered("402"));
    // Both ways of asking for nothing: no `delivery_report`, and `none` with a URL.
    let mut ids = Vec::new();
    for (to, report) in [
        (GB, json!({})),
        (
            US,
            json!({"delivery_report": "none",
        "callback_url": "http://127.0.0.1:9/dlr"}),
        ),
    ] {
        let mut batch = json!({"to": [to], "from": "+15005550006", "body": "x"});
        batch.as_object_mut().unwrap().extend(report.as_object().unwrap().clone());
        let request = client
            .post(format!("{}/xms/v1/plan1/batches", sinch.base_url()))
            .bearer_auth("token")
            .json(&batch);
        let (status, body) = support::exchange_json(request).await;
        assert_eq!(status, 201, "{body}");
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    assert_unreported(&sinch.handsets(), &ids.try_into().unwrap());

    for emulator_callbacks in [
        vonage.callbacks(),
        telesign.callbacks(),
        infobip.callbacks(),
        plivo.callbacks(),
        sinch.callbacks(),
    ] {
        assert!(emulator_callbacks.is_empty(), "{emulator_callbacks:?}");
    }
}

#[tokio::test]
async fn plivo_calls_without_a_hangup_url_are_answered_as_decided_and_report_nothing() {
    let plivo = PlivoEmulator::start(PlivoAccount::new(PLIVO_ID, PLIVO_TOKEN)).await.unwrap();
    let receiver = Receiver::start().await;
    plivo.set_receipts(gb_filtered("3010"));
    let mut ids = Vec::new();
    for to in [GB, US] {
        let call = json!({"from": "+15005550006", "to": bare(to),
            "answer_url": format!("{}/answer", receiver.base)});
        ids.push(
            plivo_post(&plivo, "Call", &call).await["request_uuid"].as_str().unwrap().to_owned(),
        );
    }
    let ids: [String; 2] = ids.try_into().unwrap();
    // Only the answered US call fetches its script; nothing reports a hangup.
    let made = tokio::time::timeout(PATIENCE, plivo.wait_for_callbacks(1)).await.unwrap();
    let made: Vec<_> = made.iter().map(|callback| (callback.kind, &callback.message_id)).collect();
    assert_eq!(made, [(CallbackKind::AnswerFetch, &ids[1])]);
    assert_unreported(&plivo.handsets(), &ids);
}

// ---------------------------------------------------------------------------------------------
// A Sinch batch to several recipients: a fate, and a report, for each.

async fn sinch_batch(sinch: &SinchRunning, batch: &Value) -> String {
    let request = reqwest::Client::new()
        .post(format!("{}/xms/v1/plan1/batches", sinch.base_url()))
        .bearer_auth("token")
        .json(batch);
    let (status, body) = support::exchange_json(request).await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn sinch_batch_recipients_each_get_their_own_fate_and_report() {
    let sinch =
        SinchEmulator::start(SinchAccount::new("plan1", "token", "key", "c2VjcmV0")).await.unwrap();
    let receiver = Receiver::start().await;
    sinch.set_receipts(three_countries("402"));
    let batch = json!({"to": [GB, DE, US], "from": "+15005550006", "body": "x",
        "delivery_report": "per_recipient_final", "client_reference": "evt-1",
        "callback_url": format!("{}/dlr", receiver.base)});
    let id = sinch_batch(&sinch, &batch).await;
    let made = tokio::time::timeout(PATIENCE, sinch.wait_for_callbacks(3)).await.unwrap();
    let handsets = sinch.handsets();
    let fates: Vec<_> = handsets
        .iter()
        .map(|h| (h.message_id.as_str(), h.country.as_deref(), h.delivered, h.lying))
        .collect();
    assert_eq!(
        fates,
        [
            (id.as_str(), Some("GB"), false, false),
            (&id, Some("DE"), false, true),
            (&id, Some("US"), true, false)
        ]
    );
    let mut reports: Vec<(String, String, u64)> = made
        .iter()
        .map(|callback| {
            assert_eq!((callback.message_id.as_str(), callback.status), (id.as_str(), Some(200)));
            let report = json_of(&callback.request_body);
            assert_eq!(report["type"], "recipient_delivery_report_sms");
            assert_eq!(
                (report["batch_id"].as_str(), report["client_reference"].as_str()),
                (Some(id.as_str()), Some("evt-1"))
            );
            let text = |name: &str| report[name].as_str().unwrap().to_owned();
            (text("recipient"), text("status"), report["code"].as_u64().unwrap())
        })
        .collect();
    // One task per recipient: they may arrive in any order.
    reports.sort();
    let mut expected = vec![
        (GB.to_owned(), "Failed".to_owned(), 402),
        (DE.to_owned(), "Delivered".to_owned(), 0),
        (US.to_owned(), "Delivered".to_owned(), 0),
    ];
    expected.sort();
    assert_eq!(reports, expected);
}

#[tokio::test]
async fn sinch_summary_and_full_reports_count_each_recipients_fate_once_per_batch() {
    let sinch =
        SinchEmulator::start(SinchAccount::new("plan1", "token", "key", "c2VjcmV0")).await.unwrap();
    let receiver = Receiver::start().await;
    sinch.set_receipts(gb_filtered("402"));
    const US2: &str = "+14155550101";
    let mut ids = Vec::new();
    for kind in ["full", "summary"] {
        let batch = json!({"to": [GB, US, US2], "from": "+15005550006", "body": "x",
            "delivery_report": kind, "callback_url": format!("{}/dlr", receiver.base)});
        ids.push(sinch_batch(&sinch, &batch).await);
    }
    let made = tokio::time::timeout(PATIENCE, sinch.wait_for_callbacks(2)).await.unwrap();
    let report_of = |id: &str| {
        let reports: Vec<_> = made.iter().filter(|callback| callback.message_id == id).collect();
        assert_eq!(reports.len(), 1, "one report per batch: {made:?}");
        json_of(&reports[0].request_body)
    };
    let full = report_of(&ids[0]);
    assert_eq!(full["type"], "delivery_report_sms");
    assert_eq!(full["total_message_count"], 3);
    let mut statuses = full["statuses"].as_array().unwrap().clone();
    statuses.sort_by_key(|status| status["code"].as_u64());
    assert_eq!(
        statuses,
        [
            json!({"code": 0, "status": "Delivered", "count": 2, "recipients": [US, US2]}),
            json!({"code": 402, "status": "Failed", "count": 1, "recipients": [GB]}),
        ]
    );
    let summary = report_of(&ids[1]);
    let mut statuses = summary["statuses"].as_array().unwrap().clone();
    statuses.sort_by_key(|status| status["code"].as_u64());
    assert_eq!(
        statuses,
        [
            json!({"code": 0, "status": "Delivered", "count": 2}),
            json!({"code": 402, "status": "Failed", "count": 1}),
        ]
    );
    let handsets = sinch.handsets();
    let delivered: Vec<_> = handsets.iter().map(|h| (h.country.as_deref(), h.delivered)).collect();
    let batch = [(Some("GB"), false), (Some("US"), true), (Some("US"), true)];
    assert_eq!(delivered, [batch, batch].concat(), "one fate per recipient");
}
