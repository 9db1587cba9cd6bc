//! The body template: JSON text with `{{name}}` placeholders inside JSON strings.
//!
//! Values are JSON-escaped (quotes, backslashes, control characters), so a message text with a
//! `"` cannot break out of its string. At load the template is rendered with sample values and
//! must parse as JSON, and every placeholder must be a known one, so a typo fails there rather
//! than on the first sign-in.

use switchboard_core::ConfigError;

/// The placeholders a template may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Placeholder {
    To,
    Text,
    Code,
    Channel,
    Locale,
    Reference,
    CallbackUrl,
}

impl Placeholder {
    const ALL: [(Placeholder, &'static str); 7] = [
        (Placeholder::To, "to"),
        (Placeholder::Text, "text"),
        (Placeholder::Code, "code"),
        (Placeholder::Channel, "channel"),
        (Placeholder::Locale, "locale"),
        (Placeholder::Reference, "reference"),
        (Placeholder::CallbackUrl, "callback_url"),
    ];
}

/// A parsed template: literal text and placeholders, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BodyTemplate {
    parts: Vec<Part>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Literal(String),
    Placeholder(Placeholder),
}

impl BodyTemplate {
    /// Parses `text`; errors name `key`.
    pub(crate) fn parse(key: &str, text: &str) -> Result<BodyTemplate, ConfigError> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            let Some(length) = rest[start + 2..].find("}}") else {
                return Err(ConfigError::invalid(key, "has a {{ without its }}"));
            };
            let name = rest[start + 2..start + 2 + length].trim();
            let placeholder = Placeholder::ALL
                .iter()
                .find(|(_, known)| *known == name)
                .map(|(placeholder, _)| *placeholder)
                .ok_or_else(|| {
                    ConfigError::invalid(
                        key,
                        format!(
                            "unknown placeholder {{{{{name}}}}} (known: to, text, code, channel, locale, reference, callback_url)"
                        ),
                    )
                })?;
            if start > 0 {
                parts.push(Part::Literal(rest[..start].to_owned()));
            }
            parts.push(Part::Placeholder(placeholder));
            rest = &rest[start + 2 + length + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_owned()));
        }
        let template = BodyTemplate { parts };
        let sample = template.render(|_| "sample \"value\"\n".to_owned());
        if serde_json::from_str::<serde_json::Value>(&sample).is_err() {
            return Err(ConfigError::invalid(
                key,
                "is not JSON once its placeholders are filled (put each {{placeholder}} inside a JSON string)",
            ));
        }
        Ok(template)
    }

    /// The body with each placeholder replaced by `value(placeholder)`, JSON-escaped.
    pub(crate) fn render(&self, value: impl Fn(Placeholder) -> String) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Placeholder(placeholder) => out.push_str(&json_escape(&value(*placeholder))),
            }
        }
        out
    }
}

/// `text` as the inside of a JSON string literal.
fn json_escape(text: &str) -> String {
    let quoted = serde_json::Value::String(text.to_owned()).to_string();
    quoted[1..quoted.len() - 1].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_escaped_values() {
        let template = BodyTemplate::parse(
            "b",
            r#"{"to":"{{to}}","text":"{{ text }}","meta":{"ref":"{{reference}}"}}"#,
        )
        .unwrap();
        let body = template.render(|placeholder| match placeholder {
            Placeholder::To => "+14155550100".into(),
            Placeholder::Text => "Say \"hi\"\\\n\u{1}".into(),
            _ => "evt-1".into(),
        });
        let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed["to"], "+14155550100");
        assert_eq!(parsed["text"], "Say \"hi\"\\\n\u{1}");
        assert_eq!(parsed["meta"]["ref"], "evt-1");
    }

    #[test]
    fn refuses_bad_templates_naming_the_key() {
        for (text, why) in [
            (r#"{"to":"{{phone}}"}"#, "unknown placeholder {{phone}}"),
            (r#"{"to":"{{to}"}"#, "without its }}"),
            (r#"{"to":{{to}}}"#, "is not JSON"),
            (r#"{"to":"{{to}}""#, "is not JSON"),
        ] {
            let error = BodyTemplate::parse("providers.gw.body", text).unwrap_err().to_string();
            assert!(
                error.starts_with("providers.gw.body: ") && error.contains(why),
                "{text}: {error}"
            );
        }
    }
}
