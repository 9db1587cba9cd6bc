//! `config/example.toml` documents the Telesign, Infobip and Plivo providers as commented-out
//! sections (so the example loads without their secrets). This keeps those sections honest:
//! uncommented, they parse, validate and build.

use std::collections::BTreeMap;

use serde::Deserialize;
use switchboard_core::{Channel, ProviderId};
use switchboard_providers::{BuildContext, ProviderConfig, build};

#[derive(Debug, Deserialize)]
struct Providers {
    providers: BTreeMap<String, ProviderConfig>,
}

/// The section after `# --- {name}` up to the next `# ---` or the routes, uncommented, with
/// `${VAR}` replaced by a value every secret check accepts.
fn uncommented(example: &str, name: &str) -> String {
    let start =
        example.find(&format!("# --- {name} ")).unwrap_or_else(|| panic!("no {name} section"));
    let section = &example[start..];
    // A section ends at the next section, or where the providers end (prices, then routes).
    let end = [
        section[1..].find("# --- ").map(|end| end + 1),
        section.find("# Prices per provider"),
        section.find("# Routes:"),
    ]
    .into_iter()
    .flatten()
    .min()
    .unwrap_or(section.len());
    let mut text = String::new();
    for line in section[..end].lines().skip(1) {
        if let Some(setting) = line.strip_prefix("# ") {
            text.push_str(setting);
            text.push('\n');
        } else {
            assert!(line.is_empty() || line.starts_with("##"), "stray line in {name}: {line}");
        }
    }
    let mut substituted = String::new();
    let mut rest = text.as_str();
    while let Some(open) = rest.find("${") {
        substituted.push_str(&rest[..open]);
        let close = rest[open..].find('}').expect("closed ${") + open;
        // base64 of 33 bytes, no padding: a valid Telesign key and a valid callback token.
        substituted.push_str("c3dpdGNoYm9hcmQtdGVzdC1zZWNyZXQtdmFsdWUtMDEy");
        rest = &rest[close + 1..];
    }
    substituted.push_str(rest);
    substituted
}

#[tokio::test]
async fn documented_sections_parse_validate_and_build() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/example.toml");
    let example = std::fs::read_to_string(path).unwrap();
    let context =
        BuildContext { callback_base: Some("https://switchboard.example.com/callbacks/x".into()) };
    for (name, id, kind) in [
        ("telesign", "telesign-eu", "telesign"),
        ("infobip", "infobip-eu", "infobip"),
        ("plivo", "plivo-us", "plivo"),
    ] {
        let text = uncommented(&example, name);
        let parsed: Providers =
            toml::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}\n{text}"));
        let config = &parsed.providers[id];
        assert_eq!(config.kind(), kind);
        config.validate(&format!("providers.{id}")).unwrap();
        let provider = build(ProviderId::parse(id).unwrap(), config, &context).unwrap();
        assert!(provider.supports(Channel::Sms) && provider.supports(Channel::Voice), "{name}");
        let without_public_url =
            build(ProviderId::parse(id).unwrap(), config, &BuildContext::default()).unwrap();
        assert_eq!(without_public_url.supports(Channel::Voice), kind != "plivo", "{name}");
    }
}
