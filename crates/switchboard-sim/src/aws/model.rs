//! The input members of the operations the emulator serves, as the botocore model
//! (`pinpoint-sms-voice-v2` 2022-03-31) declares them: names, required, types, lengths, enums.
//!
//! Written out by hand so the emulator needs no spec file at run time; a test compares this
//! table with the model itself, so a drift is caught.

/// What a member's value must be.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Kind {
    /// A string of `min..=max` characters passing `check` (the model's pattern).
    String { min: usize, max: usize, check: fn(&str) -> bool },
    /// One of these strings.
    Enum(&'static [&'static str]),
    /// An integer in `min..=max`.
    Integer { min: i64, max: i64 },
    /// `true` or `false`.
    Boolean,
    /// A string-to-string map of at most `max` entries.
    Map { max: usize },
}

/// One member of an input shape.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Member {
    pub(crate) name: &'static str,
    pub(crate) is_required: bool,
    pub(crate) kind: Kind,
}

const fn member(name: &'static str, is_required: bool, kind: Kind) -> Member {
    Member { name, is_required, kind }
}

/// `\+?[1-9][0-9]{1,18}`.
fn is_phone_number(text: &str) -> bool {
    let digits = text.strip_prefix('+').unwrap_or(text);
    (2..=19).contains(&digits.len())
        && !digits.starts_with('0')
        && digits.bytes().all(|b| b.is_ascii_digit())
}

/// `[A-Za-z0-9_:/\+-]+`.
fn is_identity(text: &str) -> bool {
    text.bytes().all(|b| b.is_ascii_alphanumeric() || b"_:/+-".contains(&b))
}

/// `[A-Za-z0-9_:/-]+`.
fn is_resource_name(text: &str) -> bool {
    text.bytes().all(|b| b.is_ascii_alphanumeric() || b"_:/-".contains(&b))
}

/// `(?!\s*$)[\s\S]+`: anything but blank.
fn is_not_blank(text: &str) -> bool {
    !text.trim().is_empty()
}

/// `[ \S]+`: no whitespace other than spaces.
fn is_keyword(text: &str) -> bool {
    text.chars().all(|c| c == ' ' || !c.is_whitespace())
}

/// `[0-9]{0,2}\.[0-9]{1,5}`.
fn is_price(text: &str) -> bool {
    text.split_once('.').is_some_and(|(units, fraction)| {
        units.len() <= 2
            && (1..=5).contains(&fraction.len())
            && units.bytes().chain(fraction.bytes()).all(|b| b.is_ascii_digit())
    })
}

/// `.+`.
fn is_anything(_: &str) -> bool {
    true
}

const PHONE: Kind = Kind::String { min: 1, max: 20, check: is_phone_number };
const IDENTITY: Kind = Kind::String { min: 1, max: 256, check: is_identity };
const RESOURCE: Kind = Kind::String { min: 1, max: 256, check: is_resource_name };
const PRICE: Kind = Kind::String { min: 2, max: 8, check: is_price };
const TTL: Kind = Kind::Integer { min: 5, max: 259_200 };

/// `VoiceId`.
pub(crate) const VOICE_IDS: &[&str] = &[
    "AMY",
    "ASTRID",
    "BIANCA",
    "BRIAN",
    "CAMILA",
    "CARLA",
    "CARMEN",
    "CELINE",
    "CHANTAL",
    "CONCHITA",
    "CRISTIANO",
    "DORA",
    "EMMA",
    "ENRIQUE",
    "EWA",
    "FILIZ",
    "GERAINT",
    "GIORGIO",
    "GWYNETH",
    "HANS",
    "INES",
    "IVY",
    "JACEK",
    "JAN",
    "JOANNA",
    "JOEY",
    "JUSTIN",
    "KARL",
    "KENDRA",
    "KIMBERLY",
    "LEA",
    "LIV",
    "LOTTE",
    "LUCIA",
    "LUPE",
    "MADS",
    "MAJA",
    "MARLENE",
    "MATHIEU",
    "MATTHEW",
    "MAXIM",
    "MIA",
    "MIGUEL",
    "MIZUKI",
    "NAJA",
    "NICOLE",
    "PENELOPE",
    "RAVEENA",
    "RICARDO",
    "RUBEN",
    "RUSSELL",
    "SALLI",
    "SEOYEON",
    "TAKUMI",
    "TATYANA",
    "VICKI",
    "VITORIA",
    "ZEINA",
    "ZHIYU",
];

const SEND_TEXT_MESSAGE: &[Member] = &[
    member("DestinationPhoneNumber", true, PHONE),
    member("OriginationIdentity", false, IDENTITY),
    member("MessageBody", false, Kind::String { min: 1, max: 1600, check: is_not_blank }),
    member("MessageType", false, Kind::Enum(&["TRANSACTIONAL", "PROMOTIONAL"])),
    member("Keyword", false, Kind::String { min: 1, max: 30, check: is_keyword }),
    member("ConfigurationSetName", false, RESOURCE),
    member("MaxPrice", false, PRICE),
    member("TimeToLive", false, TTL),
    member("Context", false, Kind::Map { max: 5 }),
    member("DestinationCountryParameters", false, Kind::Map { max: 10 }),
    member("DryRun", false, Kind::Boolean),
    member("ProtectConfigurationId", false, RESOURCE),
    member("MessageFeedbackEnabled", false, Kind::Boolean),
];

const SEND_VOICE_MESSAGE: &[Member] = &[
    member("DestinationPhoneNumber", true, PHONE),
    member("OriginationIdentity", true, IDENTITY),
    member("MessageBody", false, Kind::String { min: 1, max: 6000, check: is_not_blank }),
    member("MessageBodyTextType", false, Kind::Enum(&["TEXT", "SSML"])),
    member("VoiceId", false, Kind::Enum(VOICE_IDS)),
    member("ConfigurationSetName", false, RESOURCE),
    member("MaxPricePerMinute", false, PRICE),
    member("TimeToLive", false, TTL),
    member("Context", false, Kind::Map { max: 5 }),
    member("DryRun", false, Kind::Boolean),
    member("ProtectConfigurationId", false, RESOURCE),
    member("MessageFeedbackEnabled", false, Kind::Boolean),
];

const DESCRIBE_ACCOUNT_ATTRIBUTES: &[Member] = &[
    member("NextToken", false, Kind::String { min: 1, max: 1024, check: is_anything }),
    member("MaxResults", false, Kind::Integer { min: 1, max: 100 }),
];

/// The operations served, with their input members.
pub(crate) const OPERATIONS: &[(&str, &[Member])] = &[
    ("SendTextMessage", SEND_TEXT_MESSAGE),
    ("SendVoiceMessage", SEND_VOICE_MESSAGE),
    ("DescribeAccountAttributes", DESCRIBE_ACCOUNT_ATTRIBUTES),
];

/// A member that fails validation: its name and why.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Invalid {
    pub(crate) field: String,
    pub(crate) reason: &'static str,
    /// `MISSING_PARAMETER`, `INVALID_PARAMETER` or `UNSPECIFIED_PARAMETER_NOT_SUPPORTED`.
    pub(crate) code: &'static str,
}

/// Checks `body` against `members`: required present, no unknown member, each value valid.
pub(crate) fn validate(
    members: &[Member],
    body: &serde_json::Map<String, serde_json::Value>,
) -> Result<(), Invalid> {
    use serde_json::Value;
    let invalid = |field: &str, reason, code| Invalid { field: field.to_owned(), reason, code };
    for member in members.iter().filter(|member| member.is_required) {
        if !body.contains_key(member.name) {
            return Err(invalid(member.name, "is required", "MISSING_PARAMETER"));
        }
    }
    for (name, value) in body {
        let Some(member) = members.iter().find(|member| member.name == name) else {
            return Err(invalid(name, "is not a member", "UNSPECIFIED_PARAMETER_NOT_SUPPORTED"));
        };
        let is_valid = match (member.kind, value) {
            (Kind::String { min, max, check }, Value::String(text)) => {
                (min..=max).contains(&text.chars().count()) && check(text)
            }
            (Kind::Enum(allowed), Value::String(text)) => allowed.contains(&text.as_str()),
            (Kind::Integer { min, max }, Value::Number(number)) => {
                number.as_i64().is_some_and(|n| (min..=max).contains(&n))
            }
            (Kind::Boolean, Value::Bool(_)) => true,
            (Kind::Map { max }, Value::Object(map)) => {
                map.len() <= max && map.values().all(Value::is_string)
            }
            _ => false,
        };
        if !is_valid {
            return Err(invalid(name, "has an invalid value", "INVALID_PARAMETER"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use serde_json::{Value, json};

    use super::*;

    /// The table above, against the botocore model (`pinpoint-sms-voice-v2/2022-03-31` of
    /// <https://github.com/boto/botocore>), as distilled for the providers' conformance tests:
    /// one fixture, in the repository, for both.
    #[test]
    fn matches_the_botocore_model() {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../switchboard-providers/tests/fixtures/specs")
            .join("pinpoint-sms-voice-v2.service-2.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|error| panic!("spec fixture {}: {error}", path.display()));
        let model: Value = serde_json::from_str(&text)
            .unwrap_or_else(|error| panic!("spec fixture {}: {error}", path.display()));
        let shapes = &model["shapes"];
        for (operation, members) in OPERATIONS {
            let input = model["operations"][operation]["input"]["shape"].as_str().unwrap();
            let shape = &shapes[input];
            let declared: Vec<&str> =
                shape["members"].as_object().unwrap().keys().map(String::as_str).collect();
            let mut ours: Vec<&str> = members.iter().map(|member| member.name).collect();
            ours.sort_unstable();
            assert_eq!(ours, declared, "{operation} members (sorted)");
            let required: Vec<&str> = shape["required"]
                .as_array()
                .map(|names| names.iter().map(|name| name.as_str().unwrap()).collect())
                .unwrap_or_default();
            for member in *members {
                assert_eq!(
                    member.is_required,
                    required.contains(&member.name),
                    "{operation}.{}",
                    member.name
                );
                let target = &shapes[shape["members"][member.name]["shape"].as_str().unwrap()];
                match member.kind {
                    Kind::String { min, max, .. } => {
                        assert_eq!(target["type"], "string", "{}", member.name);
                        assert_eq!(
                            (target["min"].as_u64(), target["max"].as_u64()),
                            (Some(min as u64), Some(max as u64)),
                            "{}",
                            member.name
                        );
                    }
                    Kind::Enum(values) => {
                        let declared: Vec<&str> = target["enum"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|v| v.as_str().unwrap())
                            .collect();
                        assert_eq!(values, declared.as_slice(), "{}", member.name);
                    }
                    Kind::Integer { min, max } => {
                        assert_eq!(target["type"], "integer", "{}", member.name);
                        assert_eq!(
                            (target["min"].as_i64(), target["max"].as_i64()),
                            (Some(min), Some(max)),
                            "{}",
                            member.name
                        );
                    }
                    Kind::Boolean => assert_eq!(target["type"], "boolean", "{}", member.name),
                    Kind::Map { max } => {
                        assert_eq!(target["type"], "map", "{}", member.name);
                        assert_eq!(target["max"].as_u64(), Some(max as u64), "{}", member.name);
                    }
                }
            }
        }
    }

    fn object(value: Value) -> serde_json::Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn validates_like_the_model() {
        let ok = object(
            json!({"DestinationPhoneNumber": "+14155550100", "MessageBody": "hi", "TimeToLive": 300}),
        );
        assert_eq!(validate(SEND_TEXT_MESSAGE, &ok), Ok(()));
        for (body, field, code) in [
            (json!({"MessageBody": "hi"}), "DestinationPhoneNumber", "MISSING_PARAMETER"),
            (
                json!({"DestinationPhoneNumber": "+0123"}),
                "DestinationPhoneNumber",
                "INVALID_PARAMETER",
            ),
            (
                json!({"DestinationPhoneNumber": "+14155550100", "MessageBody": "  "}),
                "MessageBody",
                "INVALID_PARAMETER",
            ),
            (
                json!({"DestinationPhoneNumber": "+14155550100", "MessageType": "OTP"}),
                "MessageType",
                "INVALID_PARAMETER",
            ),
            (
                json!({"DestinationPhoneNumber": "+14155550100", "TimeToLive": 4}),
                "TimeToLive",
                "INVALID_PARAMETER",
            ),
            (
                json!({"DestinationPhoneNumber": "+14155550100", "TimeToLive": "300"}),
                "TimeToLive",
                "INVALID_PARAMETER",
            ),
            (
                json!({"DestinationPhoneNumber": "+14155550100", "MaxPrice": "0.123456"}),
                "MaxPrice",
                "INVALID_PARAMETER",
            ),
            (
                json!({"DestinationPhoneNumber": "+14155550100", "Colour": "blue"}),
                "Colour",
                "UNSPECIFIED_PARAMETER_NOT_SUPPORTED",
            ),
        ] {
            let error = validate(SEND_TEXT_MESSAGE, &object(body.clone())).unwrap_err();
            assert_eq!((error.field.as_str(), error.code), (field, code), "{body}");
        }
        let voice = object(json!({"DestinationPhoneNumber": "+14155550100"}));
        assert_eq!(validate(SEND_VOICE_MESSAGE, &voice).unwrap_err().field, "OriginationIdentity");
    }
}
