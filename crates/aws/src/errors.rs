//! AWS errors classified into the kinds the engine decides on: throttled, transient, conflict,
//! not found, invalid, denied. Messages come from AWS's error metadata only, never from a
//! request, so no request body (and no secret in one) can leak into them.

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use harbormaster_core::ports::{ErrorKind, PortError};

const THROTTLING: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "RequestThrottledException",
    "SlowDown",
    "ProvisionedThroughputExceededException",
];

const NOT_FOUND: &[&str] = &[
    "NoSuchKey",
    "NoSuchBucket",
    "NotFound",
    "NotFoundException",
    "ResourceNotFoundException",
    "ServiceNotFoundException",
    "ServiceNotActiveException",
    "ClusterNotFoundException",
    "RepositoryNotFoundException",
    "ImageNotFoundException",
    "ParameterNotFound",
];

pub fn classify<E, R>(operation: &str, err: &SdkError<E, R>) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + HasStatus,
{
    let kind_and_message = match err {
        SdkError::ConstructionFailure(_) => (
            ErrorKind::Invalid,
            "the request could not be built".to_owned(),
        ),
        SdkError::TimeoutError(_) => (ErrorKind::Transient, "timed out".to_owned()),
        SdkError::DispatchFailure(e) => (
            ErrorKind::Transient,
            if e.is_io() {
                "connection failed".to_owned()
            } else if e.is_timeout() {
                "timed out".to_owned()
            } else {
                "the request could not be sent".to_owned()
            },
        ),
        SdkError::ResponseError(e) => {
            let status = e.raw().status_code();
            (
                ErrorKind::Transient,
                format!("unreadable response (HTTP {status})"),
            )
        }
        SdkError::ServiceError(e) => {
            let status = e.raw().status_code();
            let code = e.err().code().unwrap_or("");
            let message = e.err().message().unwrap_or("").to_owned();
            let kind = kind_of(status, code);
            let text = match (code.is_empty(), message.is_empty()) {
                (false, false) => format!("{code}: {message}"),
                (false, true) => code.to_owned(),
                (true, false) => message,
                (true, true) => format!("HTTP {status}"),
            };
            (kind, text)
        }
        _ => (ErrorKind::Transient, "unexpected SDK error".to_owned()),
    };
    PortError::new(kind_and_message.0, operation, kind_and_message.1)
}

pub fn kind_of(status: u16, code: &str) -> ErrorKind {
    if THROTTLING.contains(&code) || status == 429 {
        ErrorKind::Throttled
    } else if status == 412
        || status == 409
        || code == "PreconditionFailed"
        || code == "ConditionalRequestConflict"
    {
        ErrorKind::Conflict
    } else if NOT_FOUND.contains(&code) || status == 404 {
        ErrorKind::NotFound
    } else if code.starts_with("AccessDenied") || code == "UnauthorizedOperation" || status == 403 {
        ErrorKind::Denied
    } else if status >= 500
        || code == "ServerException"
        || code == "InternalError"
        || code == "ServiceUnavailable"
    {
        ErrorKind::Transient
    } else {
        ErrorKind::Invalid
    }
}

/// The HTTP status of a raw response, whatever the response type.
pub trait HasStatus {
    fn status_code(&self) -> u16;
}

impl HasStatus for aws_smithy_runtime_api::http::Response {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_map_to_kinds() {
        assert_eq!(kind_of(400, "ThrottlingException"), ErrorKind::Throttled);
        assert_eq!(kind_of(503, "SlowDown"), ErrorKind::Throttled);
        assert_eq!(kind_of(500, "ServerException"), ErrorKind::Transient);
        assert_eq!(kind_of(412, "PreconditionFailed"), ErrorKind::Conflict);
        assert_eq!(
            kind_of(409, "ConditionalRequestConflict"),
            ErrorKind::Conflict
        );
        assert_eq!(
            kind_of(400, "ServiceNotFoundException"),
            ErrorKind::NotFound
        );
        assert_eq!(kind_of(400, "ClientException"), ErrorKind::Invalid);
        assert_eq!(kind_of(400, "AccessDeniedException"), ErrorKind::Denied);
    }
}
