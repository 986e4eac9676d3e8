//! The one error type every parsing constructor returns for input a user got wrong. The API maps it
//! onto a problem+json response; its `code` is part of the public contract and never changes meaning.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    /// Stable machine-readable code, e.g. `amount_scale_exceeded`.
    pub code: &'static str,
    /// Dotted path of the offending field as the client sent it, e.g. `transaction.amount`.
    pub field: String,
    /// Human-readable explanation.
    pub detail: String,
}

impl ValidationError {
    pub fn new(code: &'static str, field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            code,
            field: field.into(),
            detail: detail.into(),
        }
    }

    /// Re-roots the field path under `parent` (`amount` becomes `transaction.amount`).
    pub fn under(mut self, parent: &str) -> Self {
        self.field = if self.field.is_empty() {
            parent.to_string()
        } else {
            format!("{parent}.{}", self.field)
        };
        self
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.field, self.detail)
    }
}

impl std::error::Error for ValidationError {}
