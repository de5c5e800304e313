//! The Kafka error vocabulary. Every layer speaks in `kafka_protocol`'s [`ResponseError`]
//! (Kafka's `Errors`), so a code is named once, by the protocol crate, and turned into its
//! wire number only where a response is encoded.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use kafka_protocol::error::ResponseError;

/// The wire value of an outcome: `0` for success, the error's code otherwise.
pub fn error_code<T>(outcome: &Result<T, ResponseError>) -> i16 {
    outcome.as_ref().err().map_or(0, ResponseError::code)
}

/// The wire value of an optional error (`None` is success).
pub fn code_of(error: Option<ResponseError>) -> i16 {
    error.map_or(0, |e| e.code())
}

/// A refused operation: a Kafka error and the message the client is shown (Kafka's
/// `ApiError`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message} ({code})")]
pub struct ApiError {
    #[serde(with = "wire_code")]
    pub code: ResponseError,
    pub message: String,
}

impl ApiError {
    /// An error with a message for the client.
    pub fn new(code: ResponseError, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
        }
    }

    /// The error's wire code.
    pub fn wire_code(&self) -> i16 {
        self.code.code()
    }
}

/// Serialises a [`ResponseError`] as its wire code, so the channel's JSON stays readable
/// and stable across protocol-crate versions.
mod wire_code {
    use super::*;

    pub fn serialize<S: Serializer>(code: &ResponseError, s: S) -> Result<S::Ok, S::Error> {
        code.code().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ResponseError, D::Error> {
        let code = i16::deserialize(d)?;
        ResponseError::try_from_code(code)
            .ok_or_else(|| serde::de::Error::custom("error code 0 is not an error"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_travel_as_their_wire_codes() {
        let error = ApiError::new(ResponseError::TopicAlreadyExists, "exists");
        let json = serde_json::to_string(&error).unwrap();
        assert_eq!(json, r#"{"code":36,"message":"exists"}"#);
        assert_eq!(serde_json::from_str::<ApiError>(&json).unwrap(), error);
        assert!(serde_json::from_str::<ApiError>(r#"{"code":0,"message":""}"#).is_err());
        assert_eq!(error_code::<()>(&Ok(())), 0);
        assert_eq!(error_code::<()>(&Err(ResponseError::NotController)), 41);
    }
}
