//! Deployed prompts. For now this holds the `{{placeholder}}` template engine that every
//! templated request uses; the watched prompts directory and its registry build on it.

pub mod template;

pub use template::{Template, TemplateError};
