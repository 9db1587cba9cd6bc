//! An emulator of AWS End User Messaging SMS and Voice v2 (`pinpoint-sms-voice-v2`):
//! `SendTextMessage`, `SendVoiceMessage` and `DescribeAccountAttributes` over awsJson1_0
//! (`POST /`, `X-Amz-Target: PinpointSMSVoiceV2.<operation>`), with SigV4 verified by
//! recomputing the signature, input members checked as the botocore model declares them, and
//! AWS's JSON error shapes.
//!
//! Magic destination numbers (the emulator's own, AWS has no such list):
//! `+15550100001` ValidationException INVALID_PARAMETER on DestinationPhoneNumber,
//! `…02` ConflictException DESTINATION_PHONE_NUMBER_OPTED_OUT,
//! `…03` ValidationException DESTINATION_COUNTRY_BLOCKED,
//! `…04` ServiceQuotaExceededException MONTHLY_SPEND_LIMIT_REACHED_FOR_TEXT (`_VOICE` for calls),
//! `…05` AccessDeniedException ACCOUNT_DISABLED,
//! `…06` ConflictException DESTINATION_PHONE_NUMBER_NOT_VERIFIED (a sandbox account),
//! `…07` ResourceNotFoundException, `…08` ThrottlingException.
//!
//! HTTP statuses are not in the model (research notes section 10): client errors answer 400,
//! `InternalServerException` 500, as inferred there; the adapter reads `__type`, not the status.

mod api;
mod model;
mod sigv4;

use std::fmt;
use std::time::SystemTime;

use axum::Router;
use serde::Serialize;

use crate::emulator::{AccountApi, Api, Emulator, Running};

/// The credentials and region the emulator accepts.
#[derive(Clone, PartialEq, Eq)]
pub struct AwsAccount {
    /// The access key id in the credential scope.
    pub access_key_id: String,
    /// The secret the signature is recomputed with.
    pub secret_access_key: String,
    /// When set, requests must carry it as `X-Amz-Security-Token`; when unset, must not.
    pub session_token: Option<String>,
    /// The region the credential scope must name.
    pub region: String,
}

impl AwsAccount {
    /// Long-term credentials for `region`.
    pub fn new(
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
        region: impl Into<String>,
    ) -> AwsAccount {
        AwsAccount {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token: None,
            region: region.into(),
        }
    }

    /// Temporary credentials: the same, with a session token.
    #[must_use]
    pub fn with_session_token(self, token: impl Into<String>) -> AwsAccount {
        AwsAccount { session_token: Some(token.into()), ..self }
    }
}

impl fmt::Debug for AwsAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsAccount")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"***")
            .field("session_token", &self.session_token.as_ref().map(|_| "***"))
            .field("region", &self.region)
            .finish()
    }
}

// Per-provider record, alike in shape across emulators on purpose: its fields are this
// provider's wire format.
/// One request the emulator received, recorded before auth, validation and faults.
#[derive(Clone, Debug, Serialize)]
pub struct ReceivedCall {
    /// The operation named by `X-Amz-Target` (`SendTextMessage`), if it had the service prefix.
    pub operation: Option<String>,
    /// The raw `X-Amz-Target`.
    pub target: Option<String>,
    /// The raw `Content-Type`.
    pub content_type: Option<String>,
    /// Whether the SigV4 signature verified for the configured account.
    pub is_signature_valid: bool,
    /// The JSON body (`null` when it was not JSON).
    pub body: serde_json::Value,
    /// When the request was read.
    #[serde(serialize_with = "crate::serialize_rfc3339")]
    pub received_at: SystemTime,
}

/// AWS's half of an [`AwsEmulator`]: the account.
#[derive(Debug)]
pub struct Aws {
    account: AwsAccount,
}

/// An AWS SMS and Voice v2 emulator: cheap to clone, every clone shares faults and the record.
pub type AwsEmulator = Emulator<Aws>;

/// An AWS emulator serving on a loopback port (use its base URL as the adapter's
/// `endpoint_url`); stops on shutdown or drop.
pub type RunningEmulator = Running<Aws>;

impl Api for Aws {
    type Received = ReceivedCall;

    /// The API (`POST /`).
    fn routes(emulator: &AwsEmulator) -> Router {
        api::routes(emulator.clone())
    }
}

impl AccountApi for Aws {
    type Account = AwsAccount;

    fn for_account(account: AwsAccount) -> Aws {
        Aws { account }
    }

    fn account(&self) -> &AwsAccount {
        &self.account
    }
}
