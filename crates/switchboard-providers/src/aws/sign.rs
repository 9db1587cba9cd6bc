//! SigV4 for the awsJson1_0 POST, by the maintained `aws-sigv4` crate (service `sms-voice`).
//!
//! The signed headers are `content-type`, `host`, `x-amz-date`, `x-amz-target` and, with
//! temporary credentials, `x-amz-security-token`. Anything else reqwest adds (user agent,
//! content length, accept) is left unsigned, as AWS's SDKs do for headers a proxy may change.

use std::time::SystemTime;

use aws_credential_types::Credentials as AwsCredentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use secrecy::ExposeSecret;

use super::config::Credentials;

/// The service name in the credential scope (`signingName` in the model).
pub(crate) const SERVICE: &str = "sms-voice";

/// Signs requests for one account and region.
#[derive(Debug)]
pub(crate) struct Signer {
    credentials: Credentials,
    region: String,
}

impl Signer {
    pub(crate) fn new(credentials: Credentials, region: String) -> Signer {
        Signer { credentials, region }
    }

    /// The headers to add to a `POST {url}` with `headers` (lower-case names, `host` included)
    /// and `body`, signed at `at`.
    pub(crate) fn sign(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        at: SystemTime,
    ) -> Result<Vec<(&'static str, String)>, String> {
        let identity = AwsCredentials::new(
            &self.credentials.access_key_id,
            self.credentials.secret_access_key.expose_secret(),
            self.credentials.session_token.as_ref().map(|token| token.expose_secret().to_owned()),
            None,
            "switchboard-config",
        )
        .into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(SERVICE)
            .time(at)
            .settings(SigningSettings::default())
            .build()
            .map_err(|error| error.to_string())?
            .into();
        let signable =
            SignableRequest::new("POST", url, headers.iter().copied(), SignableBody::Bytes(body))
                .map_err(|error| error.to_string())?;
        let (instructions, _signature) =
            sign(signable, &params).map_err(|error| error.to_string())?.into_parts();
        let (headers, _params) = instructions.into_parts();
        Ok(headers.into_iter().map(|header| (header.name(), header.value().to_owned())).collect())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use secrecy::SecretString;

    use super::*;

    fn signer(session_token: Option<&str>) -> Signer {
        Signer::new(
            Credentials {
                access_key_id: "AKIDEXAMPLE".into(),
                secret_access_key: SecretString::from("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
                session_token: session_token.map(SecretString::from),
            },
            "us-east-1".into(),
        )
    }

    const HEADERS: &[(&str, &str)] = &[
        ("content-type", "application/x-amz-json-1.0"),
        ("host", "sms-voice.us-east-1.amazonaws.com"),
        ("x-amz-target", "PinpointSMSVoiceV2.SendTextMessage"),
    ];

    #[test]
    fn signs_with_the_sms_voice_scope() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600); // 2026-01-01
        let headers = signer(None)
            .sign("https://sms-voice.us-east-1.amazonaws.com/", HEADERS, b"{}", at)
            .unwrap();
        let get =
            |name: &str| headers.iter().find(|(key, _)| *key == name).map(|(_, v)| v.as_str());
        assert_eq!(get("x-amz-date"), Some("20260101T000000Z"));
        let authorization = get("authorization").unwrap();
        assert!(
            authorization.starts_with(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-east-1/sms-voice/aws4_request, \
                 SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature="
            ),
            "{authorization}"
        );
        assert_eq!(get("x-amz-security-token"), None);
        // Deterministic: the same request at the same time signs the same; another body does not.
        let again = signer(None)
            .sign("https://sms-voice.us-east-1.amazonaws.com/", HEADERS, b"{}", at)
            .unwrap();
        assert_eq!(headers, again);
        let other = signer(None)
            .sign("https://sms-voice.us-east-1.amazonaws.com/", HEADERS, b"{ }", at)
            .unwrap();
        assert_ne!(headers, other);
    }

    #[test]
    fn temporary_credentials_sign_the_token() {
        let headers = signer(Some("session-token"))
            .sign("https://sms-voice.us-east-1.amazonaws.com/", HEADERS, b"{}", SystemTime::now())
            .unwrap();
        let authorization = &headers.iter().find(|(key, _)| *key == "authorization").unwrap().1;
        assert!(
            authorization.contains("x-amz-date;x-amz-security-token;x-amz-target"),
            "{authorization}"
        );
        assert!(headers.contains(&("x-amz-security-token", "session-token".to_owned())));
    }
}
