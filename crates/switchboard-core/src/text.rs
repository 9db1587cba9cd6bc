//! SMS text: which alphabet a message needs, how many parts it is billed as, and the per-locale
//! templates the passcode is put into.
//!
//! Why count segments at all: a long template, or one character outside GSM-7, multiplies the
//! cost of every passcode (threat T12; Tamil or Chinese text tripled a bill in one public
//! report). Templates are therefore checked when config is loaded, with the longest possible
//! passcode in them, and refused if they could exceed the configured number of parts.
//!
//! The rules (3GPP TS 23.038 / GSM 03.38, and the concatenation header of TS 23.040):
//! - GSM-7 when every character is in the basic set (one septet) or the extension table (an
//!   escape plus one septet: two). 160 septets fit one message; a concatenated message carries
//!   153 per part, and an escape pair is never split across parts.
//! - Otherwise UCS-2, counted in UTF-16 code units: 70 fit one message, 67 per part, and a
//!   surrogate pair (an emoji) is never split.
//! - Only the upper-case `Ç` is in the basic set. The lower-case `ç` is not, so it makes the
//!   message UCS-2 (Vonage's Ruby SDK once got this wrong, research notes (c)8). Lookalikes are
//!   not transliterated here: a template is the operator's own text and is checked as written.
//!
//! No crate was used: `gsm7` packs septets for the wire (not needed: providers encode), and the
//! splitters on crates.io are small 0.x projects; the rules fit in this tested module.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

use crate::config::ConfigError;
use crate::domain::{Locale, MessageText, Passcode};

/// The GSM 03.38 basic character set, in code order (0x1B, the escape, is not a character).
const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
                          ¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";

/// The GSM 03.38 extension table: each costs an escape plus a septet. `\u{c}` is form feed.
const GSM7_EXTENSION: &str = "\u{c}^{}\\[~]|€";

/// Septets in one unsplit GSM-7 message, and per part of a concatenated one.
const GSM7_SINGLE: usize = 160;
const GSM7_PART: usize = 153;
/// UTF-16 code units in one unsplit UCS-2 message, and per part of a concatenated one.
const UCS2_SINGLE: usize = 70;
const UCS2_PART: usize = 67;

/// The longest passcode ([`Passcode`] accepts 4 to 10 digits): templates are checked with it.
const LONGEST_CODE: &str = "0000000000";

/// The placeholder a template must contain.
pub const CODE_PLACEHOLDER: &str = "{code}";

/// The alphabet a message is sent in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// GSM 03.38 7-bit default alphabet.
    Gsm7,
    /// UCS-2 (UTF-16 code units on the wire).
    Ucs2,
}

impl Encoding {
    /// `gsm7` or `ucs2`, for logs and error messages.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Gsm7 => "gsm7",
            Encoding::Ucs2 => "ucs2",
        }
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a text is billed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segments {
    /// The alphabet it needs.
    pub encoding: Encoding,
    /// Its length in that alphabet's units: septets for GSM-7, UTF-16 code units for UCS-2.
    pub units: usize,
    /// The number of SMS parts (1 for an empty text).
    pub count: usize,
}

/// Septets `c` takes in GSM-7 (1 or 2), or `None` if it is not in the alphabet.
#[must_use]
pub fn gsm7_septets(c: char) -> Option<usize> {
    if GSM7_BASIC.contains(c) {
        Some(1)
    } else if GSM7_EXTENSION.contains(c) {
        Some(2)
    } else {
        None
    }
}

/// The alphabet `text` needs.
#[must_use]
pub fn encoding(text: &str) -> Encoding {
    if text.chars().all(|c| gsm7_septets(c).is_some()) { Encoding::Gsm7 } else { Encoding::Ucs2 }
}

/// How `text` is billed: its alphabet, length and number of parts.
#[must_use]
pub fn segments(text: &str) -> Segments {
    match encoding(text) {
        Encoding::Gsm7 => {
            let sizes: Vec<usize> = text.chars().filter_map(gsm7_septets).collect();
            let units = sizes.iter().sum();
            Segments {
                encoding: Encoding::Gsm7,
                units,
                count: parts(&sizes, GSM7_SINGLE, GSM7_PART),
            }
        }
        Encoding::Ucs2 => {
            let sizes: Vec<usize> = text.chars().map(char::len_utf16).collect();
            let units = sizes.iter().sum();
            Segments {
                encoding: Encoding::Ucs2,
                units,
                count: parts(&sizes, UCS2_SINGLE, UCS2_PART),
            }
        }
    }
}

/// Parts for characters of `sizes` units: one if they fit `single`, else greedy parts of at
/// most `per_part` units that never split a character (an escape pair or a surrogate pair).
fn parts(sizes: &[usize], single: usize, per_part: usize) -> usize {
    if sizes.iter().sum::<usize>() <= single {
        return 1;
    }
    let mut n_parts = 1;
    let mut used = 0;
    for &size in sizes {
        if used + size > per_part {
            n_parts += 1;
            used = 0;
        }
        used += size;
    }
    n_parts
}

fn default_max_segments() -> u32 {
    2
}

/// `[sms_text]` as written in config: a default template, one per locale, and a cost cap.
///
/// ```toml
/// [sms_text]
/// default = "Your Acme code is {code}"
/// max_segments = 2
/// [sms_text.locales]
/// fr = "Votre code Acme est {code}"
/// pt-BR = "Seu código Acme é {code}"
/// ```
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateConfig {
    /// The template for locales without their own; must contain `{code}`.
    pub default: String,
    /// Templates by locale (`fr`, `pt-BR`): an exact tag wins over its language.
    #[serde(default)]
    pub locales: BTreeMap<String, String>,
    /// Most SMS parts a rendered message may take (1 to 10; default 2, threat T12).
    #[serde(default = "default_max_segments")]
    pub max_segments: u32,
}

/// One checked template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    text: String,
    /// Billing with the longest passcode in it.
    worst_case: Segments,
}

impl Template {
    /// The template as written.
    #[must_use]
    pub fn text(&self) -> &str {
        &self.text
    }

    /// How a message from this template is billed with the longest passcode (10 digits).
    #[must_use]
    pub fn worst_case(&self) -> Segments {
        self.worst_case
    }

    /// The template with `passcode` in place of every `{code}`.
    #[must_use]
    pub fn render(&self, passcode: &Passcode) -> MessageText {
        MessageText::new(self.text.replace(CODE_PLACEHOLDER, passcode.expose()))
    }
}

/// Validated templates: a default and overrides by locale tag (`fr`, `pt-BR`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateSet {
    default: Template,
    /// Keyed by normalised tag ([`Locale::tag`]).
    by_locale: BTreeMap<String, Template>,
}

impl TemplateSet {
    /// Checks `config` at `key` (`sms_text`): every template contains `{code}` and, with the
    /// longest passcode, takes at most `max_segments` parts; locale keys parse. Errors name
    /// the template's key (`sms_text.locales.fr`).
    pub fn try_new(key: &str, config: &TemplateConfig) -> Result<TemplateSet, ConfigError> {
        if !(1..=10).contains(&config.max_segments) {
            return Err(ConfigError::invalid(
                format!("{key}.max_segments"),
                "must be between 1 and 10",
            ));
        }
        let max_segments = config.max_segments as usize;
        let default = check(&format!("{key}.default"), &config.default, max_segments)?;
        let mut by_locale = BTreeMap::new();
        for (tag, text) in &config.locales {
            let template_key = format!("{key}.locales.{tag}");
            let locale = Locale::parse(tag).ok_or_else(|| {
                ConfigError::invalid(&template_key, "is not a locale such as `fr` or `pt-BR`")
            })?;
            let template = check(&template_key, text, max_segments)?;
            if by_locale.insert(locale.tag(), template).is_some() {
                return Err(ConfigError::invalid(template_key, "names a locale given twice"));
            }
        }
        Ok(TemplateSet { default, by_locale })
    }

    /// The template for `locale`: its exact tag, else its language, else the default.
    #[must_use]
    pub fn template_for(&self, locale: Option<&Locale>) -> &Template {
        locale
            .and_then(|locale| {
                self.by_locale.get(&locale.tag()).or_else(|| self.by_locale.get(locale.language()))
            })
            .unwrap_or(&self.default)
    }

    /// The SMS text for `passcode` in `locale`.
    #[must_use]
    pub fn render(&self, locale: Option<&Locale>, passcode: &Passcode) -> MessageText {
        self.template_for(locale).render(passcode)
    }
}

fn check(key: &str, text: &str, max_segments: usize) -> Result<Template, ConfigError> {
    if !text.contains(CODE_PLACEHOLDER) {
        return Err(ConfigError::invalid(key, "must contain {code}, where the passcode goes"));
    }
    let worst_case = segments(&text.replace(CODE_PLACEHOLDER, LONGEST_CODE));
    if worst_case.count > max_segments {
        let unit = match worst_case.encoding {
            Encoding::Gsm7 => "septets",
            Encoding::Ucs2 => "utf-16 units",
        };
        return Err(ConfigError::invalid(
            key,
            format!(
                "takes {} sms parts ({} {unit}, {}) with a 10-digit code, more than max_segments {max_segments}",
                worst_case.count, worst_case.units, worst_case.encoding,
            ),
        ));
    }
    Ok(Template { text: text.to_owned(), worst_case })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn the_alphabet_has_128_basic_and_10_extension_characters() {
        assert_eq!(GSM7_BASIC.chars().count(), 127, "128 codes less the escape");
        assert_eq!(GSM7_EXTENSION.chars().count(), 10);
    }

    #[test]
    fn detects_the_alphabet() {
        assert_eq!(encoding("Your code is 123456"), Encoding::Gsm7);
        assert_eq!(encoding("Ça coûte 5€ {ok}"), Encoding::Ucs2, "û is not GSM-7");
        assert_eq!(encoding("Ça va, 5€ [ok]"), Encoding::Gsm7);
        assert_eq!(encoding("ça va"), Encoding::Ucs2, "only the capital Ç is GSM-7");
        assert_eq!(encoding("Código: 1234"), Encoding::Ucs2, "ó is not GSM-7");
        assert_eq!(encoding("Kod: 1234 – ok"), Encoding::Ucs2, "an en dash is not a hyphen");
        assert_eq!(encoding(""), Encoding::Gsm7);
    }

    #[test]
    fn counts_segments_at_the_boundaries() {
        let gsm = |n| "a".repeat(n);
        for (text, units, count) in [
            (gsm(0), 0, 1),
            (gsm(160), 160, 1),
            (gsm(161), 161, 2),
            (gsm(306), 306, 2),
            (gsm(307), 307, 3),
            ("€".repeat(80), 160, 1),
            ("€".repeat(81), 162, 2),
            ("確".repeat(70), 70, 1),
            ("確".repeat(71), 71, 2),
            ("確".repeat(134), 134, 2),
            ("確".repeat(135), 135, 3),
        ] {
            let counted = segments(&text);
            assert_eq!(
                (counted.units, counted.count),
                (units, count),
                "{} chars",
                text.chars().count()
            );
        }
    }

    #[test]
    fn never_splits_an_escape_or_a_surrogate_pair() {
        // 152 plain septets, then `€`: it cannot start at septet 153 of part one, so part one
        // ends early; 161 septets in all, still two parts.
        let text = format!("{}€{}", "a".repeat(152), "a".repeat(7));
        assert_eq!(segments(&text), Segments { encoding: Encoding::Gsm7, units: 161, count: 2 });
        // 306 septets would fit two parts exactly, but the escape pair moves one septet over.
        let text = format!("{}€{}", "a".repeat(152), "a".repeat(152));
        assert_eq!(segments(&text).units, 306);
        assert_eq!(segments(&text).count, 3);
        // UCS-2: 66 units, then an emoji (a surrogate pair) that does not fit unit 67.
        let text = format!("{}😀{}", "確".repeat(66), "確".repeat(66));
        assert_eq!(segments(&text), Segments { encoding: Encoding::Ucs2, units: 134, count: 3 });
    }

    fn config(default: &str, locales: &[(&str, &str)], max_segments: u32) -> TemplateConfig {
        TemplateConfig {
            default: default.into(),
            locales: locales.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            max_segments,
        }
    }

    #[test]
    fn renders_by_exact_tag_then_language_then_default() {
        let set = TemplateSet::try_new(
            "sms_text",
            &config(
                "Your code is {code}",
                &[
                    ("fr", "Votre code est {code}"),
                    ("fr_CA", "Votre code : {code}"),
                    ("EN-gb", "Code {code}"),
                ],
                2,
            ),
        )
        .unwrap();
        let code = Passcode::parse("918273").unwrap();
        let render = |tag: Option<&str>| {
            set.render(tag.and_then(Locale::parse).as_ref(), &code).expose().to_owned()
        };
        assert_eq!(render(None), "Your code is 918273");
        assert_eq!(render(Some("fr-FR")), "Votre code est 918273");
        assert_eq!(render(Some("fr-CA")), "Votre code : 918273");
        assert_eq!(render(Some("en-GB")), "Code 918273");
        assert_eq!(render(Some("de")), "Your code is 918273");
        assert_eq!(set.template_for(None).worst_case().count, 1);
    }

    #[test]
    fn refusals_name_the_key() {
        let long = "x".repeat(300);
        for (config, key) in [
            (config("Your code", &[], 2), "sms_text.default"),
            (config("{code}", &[("fr", "Votre code")], 2), "sms_text.locales.fr"),
            (config("{code}", &[("french", "{code}")], 2), "sms_text.locales.french"),
            (config("{code}", &[("fr", "{code}"), ("FR", "{code}")], 2), "sms_text.locales.fr"),
            (config(&format!("{long}{{code}}"), &[], 2), "sms_text.default"),
            (config("{code}", &[], 0), "sms_text.max_segments"),
        ] {
            let error = TemplateSet::try_new("sms_text", &config).unwrap_err().to_string();
            assert!(error.starts_with(&format!("{key}: ")), "{key}: {error}");
        }
    }

    #[test]
    fn a_non_gsm_template_is_measured_in_ucs2() {
        // 70 UCS-2 units with a 10-digit code: one part; one more character makes two.
        let fits = format!("{}{{code}}", "確".repeat(60));
        assert!(TemplateSet::try_new("t", &config(&fits, &[], 1)).is_ok());
        let over = format!("{}{{code}}", "確".repeat(61));
        let error = TemplateSet::try_new("t", &config(&over, &[], 1)).unwrap_err().to_string();
        assert!(error.contains("2 sms parts") && error.contains("ucs2"), "{error}");
        // The same length in GSM-7 is far from the limit.
        let gsm = format!("{}{{code}}", "a".repeat(61));
        assert!(TemplateSet::try_new("t", &config(&gsm, &[], 1)).is_ok());
    }

    #[test]
    fn template_config_parses_from_toml() {
        let parsed: TemplateConfig = toml::from_str(
            "default = \"Your code is {code}\"\n[locales]\nfr = \"Votre code est {code}\"\n",
        )
        .unwrap();
        assert_eq!(parsed.max_segments, 2);
        assert!(TemplateSet::try_new("sms_text", &parsed).is_ok());
        assert!(
            toml::from_str::<TemplateConfig>("default = \"{code}\"\nmax_segment = 1\n").is_err()
        );
    }

    fn gsm_basic_char() -> impl Strategy<Value = char> {
        let chars: Vec<char> = GSM7_BASIC.chars().collect();
        proptest::sample::select(chars)
    }

    fn gsm_char() -> impl Strategy<Value = char> {
        let chars: Vec<char> = GSM7_BASIC.chars().chain(GSM7_EXTENSION.chars()).collect();
        proptest::sample::select(chars)
    }

    proptest! {
        #[test]
        fn plain_gsm7_parts_are_ceil_of_septets_over_153(
            text in proptest::collection::vec(gsm_basic_char(), 0..700)
        ) {
            let text: String = text.into_iter().collect();
            let counted = segments(&text);
            let n = text.chars().count();
            prop_assert_eq!(counted.encoding, Encoding::Gsm7);
            prop_assert_eq!(counted.units, n);
            let expected = if n <= 160 { 1 } else { n.div_ceil(153) };
            prop_assert_eq!(counted.count, expected);
        }

        #[test]
        fn gsm7_with_escapes_loses_at_most_one_septet_per_part(
            text in proptest::collection::vec(gsm_char(), 0..700)
        ) {
            let text: String = text.into_iter().collect();
            let counted = segments(&text);
            prop_assert_eq!(counted.encoding, Encoding::Gsm7);
            let expected_units: usize = text.chars().map(|c| gsm7_septets(c).unwrap()).sum();
            prop_assert_eq!(counted.units, expected_units);
            if counted.units > 160 {
                prop_assert!(counted.count >= counted.units.div_ceil(153));
                prop_assert!(counted.count <= counted.units.div_ceil(152));
            } else {
                prop_assert_eq!(counted.count, 1);
            }
        }

        #[test]
        fn any_non_gsm_character_makes_it_ucs2_counted_in_utf16(
            text in "\\PC{0,300}", extra in "[çûő😀確]"
        ) {
            let text = format!("{text}{extra}");
            let counted = segments(&text);
            prop_assert_eq!(counted.encoding, Encoding::Ucs2);
            prop_assert_eq!(counted.units, text.encode_utf16().count());
            if counted.units > 70 {
                prop_assert!(counted.count >= counted.units.div_ceil(67));
                prop_assert!(counted.count <= counted.units.div_ceil(66));
            } else {
                prop_assert_eq!(counted.count, 1);
            }
        }

        #[test]
        fn a_checked_template_never_renders_over_its_limit(
            prefix in "[a-zA-Z ]{0,200}", code in "[0-9]{4,10}", max_segments in 1u32..4
        ) {
            let config = config(&format!("{prefix}{{code}}"), &[], max_segments);
            if let Ok(set) = TemplateSet::try_new("t", &config) {
                let passcode = Passcode::parse(&code).unwrap();
                let text = set.render(None, &passcode);
                prop_assert!(text.expose().contains(&code));
                prop_assert!(segments(text.expose()).count <= max_segments as usize);
            }
        }
    }
}
