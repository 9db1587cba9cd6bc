//! The admin listener: the API needs the bearer token, reloads keep health and refuse bad files,
//! the operator switch steers traffic, and rotated secret files are picked up.

use reqwest::Method;

use crate::helpers::{action, okta_request, spawn_app, within};

#[tokio::test]
async fn the_admin_api_requires_the_bearer_token() {
    let app = spawn_app().await;
    let url = format!("{}/admin/providers", app.admin_url);
    assert_eq!(app.client.get(&url).send().await.unwrap().status(), 401);
    let wrong = app
        .client
        .get(&url)
        .header("Authorization", "Bearer not-the-token-at-all")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let reload = app.client.post(format!("{}/admin/reload", app.admin_url)).send().await.unwrap();
    assert_eq!(reload.status(), 401);
    // Metrics and health stay open for Prometheus and the orchestrator.
    assert_eq!(
        app.client.get(format!("{}/metrics", app.admin_url)).send().await.unwrap().status(),
        200
    );

    let listing: serde_json::Value =
        app.admin(Method::GET, "/admin/providers").send().await.unwrap().json().await.unwrap();
    let providers = listing["providers"].as_array().unwrap();
    assert_eq!(providers.len(), 2);
    assert_eq!(providers[0]["id"], "twilio-backup");
    assert_eq!(providers[0]["kind"], "twilio");
    assert_eq!(providers[0]["health"]["state"], "healthy");
    assert!(!listing.to_string().contains("primary-token"), "no credential in the listing");
}

#[tokio::test]
async fn the_operator_switch_moves_traffic_and_back() {
    let app = spawn_app().await;
    let disable = app
        .admin(Method::PUT, "/admin/providers/twilio-primary/state")
        .json(&serde_json::json!({"state": "disabled"}))
        .send()
        .await
        .unwrap();
    assert_eq!(disable.status(), 200);
    let (_, answer) =
        app.hook_json(&okta_request("evt-switch-1", "+14155550100", "482915", "SMS")).await;
    assert_eq!(action(&answer)["provider"], "twilio-backup");
    assert!(app.primary.received().is_empty(), "a disabled provider gets nothing");

    let bad = app
        .admin(Method::PUT, "/admin/providers/twilio-primary/state")
        .json(&serde_json::json!({"state": "off"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let unknown = app
        .admin(Method::PUT, "/admin/providers/nobody/state")
        .json(&serde_json::json!({"state": "enabled"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);

    app.admin(Method::PUT, "/admin/providers/twilio-primary/state")
        .json(&serde_json::json!({"state": "enabled"}))
        .send()
        .await
        .unwrap();
    let (_, answer) =
        app.hook_json(&okta_request("evt-switch-2", "+14155550142", "482915", "SMS")).await;
    assert_eq!(action(&answer)["provider"], "twilio-primary");
}

#[tokio::test]
async fn a_reload_swaps_routes_and_a_bad_file_is_refused_naming_the_key() {
    let app = spawn_app().await;
    let original = std::fs::read_to_string(&app.config_path).unwrap();

    // Reverse the route order and reload: the backup now comes first.
    let reversed = original.replace(
        "providers = [\"twilio-primary\", \"twilio-backup\"]",
        "providers = [\"twilio-backup\", \"twilio-primary\"]",
    );
    std::fs::write(&app.config_path, reversed).unwrap();
    let response = app.admin(Method::POST, "/admin/reload").send().await.unwrap();
    assert_eq!(response.status(), 200);
    let (_, answer) =
        app.hook_json(&okta_request("evt-reload-1", "+14155550100", "482915", "SMS")).await;
    assert_eq!(action(&answer)["provider"], "twilio-backup");

    // A broken file is refused with the key named, and the running config stays.
    let broken = original.replace("deadline_ms = 2500", "deadline_ms = 99999");
    std::fs::write(&app.config_path, broken).unwrap();
    let response = app.admin(Method::POST, "/admin/reload").send().await.unwrap();
    assert_eq!(response.status(), 400);
    let error: serde_json::Value = response.json().await.unwrap();
    assert!(error["error"].as_str().unwrap().starts_with("okta.deadline_ms:"), "{error}");
    let (_, answer) =
        app.hook_json(&okta_request("evt-reload-2", "+14155550142", "482915", "SMS")).await;
    assert_eq!(
        action(&answer)["provider"],
        "twilio-backup",
        "the reversed routes are still in force"
    );
    let metrics = app.metrics().await;
    assert!(metrics.contains("switchboard_config_reloads_total{result=\"ok\"} 1"), "{metrics}");
    assert!(
        metrics.contains("switchboard_config_reloads_total{result=\"refused\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_rotated_secret_file_is_picked_up_by_the_watcher() {
    let app = spawn_app().await;
    let watcher = app.server.watch(std::time::Duration::from_millis(20));

    let rotated = "rotated-hook-secret-0123456789";
    // Make sure the modification time moves even on coarse-grained filesystems.
    let file = std::fs::File::options().write(true).truncate(true).open(&app.secret_file).unwrap();
    std::io::Write::write_all(&mut &file, rotated.as_bytes()).unwrap();
    file.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(5)).unwrap();
    drop(file);
    within(10, app.logs.wait_for("configuration reloaded")).await;
    watcher.abort();

    let body = okta_request("evt-rotated", "+14155550100", "482915", "SMS");
    let old = app.hook(&body).await;
    assert_eq!(old.status(), 401, "the old secret is gone");
    let new = app
        .client
        .post(&app.hook_url)
        .header("Authorization", rotated)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(new.status(), 200);
}

#[tokio::test]
async fn explain_shows_live_health_and_why_a_provider_was_left_out() {
    use switchboard_sim::faults::{Fault, Faults};
    let app = crate::helpers::spawn_app_with(crate::helpers::AppOptions {
        consecutive_failures: 2,
        ..crate::helpers::AppOptions::default()
    })
    .await;
    app.primary.set_faults(Faults::always(Fault::Status { status: 503, code: Some(20503) }));
    for index in 0..2 {
        app.hook_json(&okta_request(
            &format!("evt-explain-{index}"),
            &format!("+1415555011{index}"),
            "482915",
            "SMS",
        ))
        .await;
    }

    let json: serde_json::Value = app
        .admin(Method::GET, "/admin/explain?number=%2B14155550177&channel=sms")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(json["country"], "US");
    assert_eq!(json["candidates"][0]["provider"], "twilio-backup", "{json}");
    assert_eq!(json["excluded"][0]["provider"], "twilio-primary", "{json}");
    assert_eq!(json["excluded"][0]["reason"], "ejected", "{json}");

    let text = app.explain_text("%2B14155550177").await;
    assert!(text.contains("excluded     twilio-primary: ejected"), "{text}");
    assert!(!text.contains("4155550177"), "{text}");
    let bad = app.admin(Method::GET, "/admin/explain?number=nope").send().await.unwrap();
    assert_eq!(bad.status(), 400);
}
