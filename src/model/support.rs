//! What each provider kind can honour: one check of a request's parameters (the model's
//! [`Params`]) against its kind, naming the first it cannot — refuse, never drop. Every door's
//! request meets it where the engine encodes it for an Anthropic-kind provider
//! (`wire::anthropic`), and each door names the parameter in its own vocabulary. A parameter
//! at its neutral value (a penalty of 0, a text response format) asks nothing and passes: the
//! Parea SDK sends every parameter, unset ones as those values.
//!
//! An OpenAI-kind provider is any server speaking OpenAI's API (OpenAI, vLLM, llama.cpp,
//! Ollama, ...), whose parameters differ: it is given everything, and its own error (passed
//! through with its code and param) says what it does not take.

use super::{Params, ResponseFormat};
use crate::config::ProviderKind;

/// A parameter of the model's [`Params`], for a door to name in its own vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Param {
    PresencePenalty,
    FrequencyPenalty,
    ResponseFormat,
    Seed,
}

/// A parameter the provider kind cannot honour, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub param: Param,
    pub why: &'static str,
}

/// The first parameter of `params` a provider of `kind` cannot honour.
pub fn check(kind: ProviderKind, params: &Params) -> Result<(), Refusal> {
    match kind {
        ProviderKind::OpenAi => Ok(()),
        ProviderKind::Anthropic => anthropic(params),
    }
}

fn anthropic(params: &Params) -> Result<(), Refusal> {
    let refuse = |param, why| Err(Refusal { param, why });
    let penalty = "Anthropic models take no presence or frequency penalty; use 0";
    if params.presence_penalty.is_some_and(|p| p != 0.0) {
        return refuse(Param::PresencePenalty, penalty);
    }
    if params.frequency_penalty.is_some_and(|p| p != 0.0) {
        return refuse(Param::FrequencyPenalty, penalty);
    }
    if matches!(
        params.response_format,
        Some(ResponseFormat::JsonObject | ResponseFormat::JsonSchema { .. })
    ) {
        return refuse(
            Param::ResponseFormat,
            "Anthropic models have no JSON mode; ask for JSON in the prompt or use a tool",
        );
    }
    if params.seed.is_some() {
        return refuse(
            Param::Seed,
            "Anthropic models have no seed: sampling cannot be made reproducible",
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anthropic_refuses_what_it_cannot_honour_and_takes_neutral_values() {
        let neutral = Params {
            temperature: Some(1.0),
            top_p: Some(1.0),
            presence_penalty: Some(0.0),
            frequency_penalty: Some(0.0),
            response_format: Some(ResponseFormat::Text),
            ..Params::default()
        };
        assert_eq!(check(ProviderKind::Anthropic, &neutral), Ok(()));
        let refused = |params: Params| check(ProviderKind::Anthropic, &params).map_err(|r| r.param);
        assert_eq!(
            refused(Params {
                frequency_penalty: Some(0.5),
                ..neutral.clone()
            }),
            Err(Param::FrequencyPenalty)
        );
        assert_eq!(
            refused(Params {
                presence_penalty: Some(-1.0),
                ..neutral.clone()
            }),
            Err(Param::PresencePenalty)
        );
        assert_eq!(
            refused(Params {
                response_format: Some(ResponseFormat::JsonObject),
                ..neutral.clone()
            }),
            Err(Param::ResponseFormat)
        );
        assert_eq!(
            refused(Params {
                seed: Some(7),
                ..neutral.clone()
            }),
            Err(Param::Seed)
        );
        let everything = Params {
            frequency_penalty: Some(2.0),
            seed: Some(1),
            response_format: Some(ResponseFormat::JsonObject),
            ..Params::default()
        };
        assert_eq!(check(ProviderKind::OpenAi, &everything), Ok(()));
    }
}
