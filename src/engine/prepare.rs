//! Turn a decoded [`Call`] into a [`Prepared`] call: trace id chosen, provider
//! resolved (and its key: a provider that needs one nobody gave is refused here), messages
//! rendered and history placed, defaults applied, every check done before any upstream is
//! called.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Map, Value};

use super::RequestCtx;
use crate::call::configuration::function_tools;
use crate::call::{ApiError, Call, FunctionCallSpec, Message, ModelCall};
use crate::config::Secret;
use crate::deployments::{Deployment, Template, TemplateError};
use crate::logs::CompletionLog;
use crate::memory::{MemoryBudget, Reservation};
use crate::model::{self, Wire};
use crate::projects::ProjectStore;
use crate::providers::{ChatRequest, Provider, ProviderKind};
use crate::wire::{self, anthropic::EncodeOptions};

/// A request ready for the provider.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub trace_id: String,
    pub provider: Arc<Provider>,
    /// Shared with the log record, which is built from it in the background.
    pub chat: Arc<ChatRequest>,
    /// `provider_api_key` of the request, beating the configured key.
    pub api_key: Option<Secret>,
    /// `cache` (default true): read and write the completion cache.
    pub cache: bool,
    /// Ask the provider even when a fresh entry answers, and store the new answer.
    pub refresh: bool,
    /// What the log record of this completion takes from the request (no key).
    pub log: CompletionLog,
    /// The rendered messages' share of `max_request_memory`, held while the call is (clones
    /// share it; the last one gives it back).
    pub memory: Arc<Reservation>,
    /// Who sent the request, by which route: noted in its log record.
    pub ctx: RequestCtx,
    /// What the call's translation for a provider of another wire left out because it does
    /// not change the answer (`x-promptd-dropped`, and `promptd_dropped` in the record).
    pub dropped: Vec<String>,
}

/// Resolve `req` (with its deployment, when it names one) against the configured providers.
pub fn prepare(
    mut req: Call,
    deployment: Option<&Deployment>,
    lookup: impl Fn(&str) -> Option<Arc<Provider>>,
    provider_names: impl Fn() -> Vec<String>,
    max_rendered: u64,
    budget: &MemoryBudget,
    ctx: RequestCtx,
) -> Result<Prepared, ApiError> {
    if let Some(rate) = req.log_sample_rate {
        if !(0.0..=1.0).contains(&rate) {
            return Err(ApiError::invalid(
                "log_sample_rate",
                format!("log_sample_rate must be between 0 and 1, got {rate}"),
            ));
        }
    }
    let trace_id = req
        .trace_id
        .clone()
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let mut log = CompletionLog::from_call(&req, trace_id.clone());
    if log.project_uuid.is_none() {
        log.project_uuid = log.project_name.as_deref().map(ProjectStore::uuid_for);
    }
    let mut memory = budget.reservation();
    let limits = (max_rendered, budget);
    let inputs = req.inputs.as_ref();
    let call = req
        .request
        .take()
        .ok_or_else(|| ApiError::Internal("a call without its request".into()))?;
    let provider = req.provider.take();
    let history = req.history.take().unwrap_or_default();
    let (provider_name, call) = resolve(
        *call,
        provider,
        deployment,
        (inputs, history),
        limits,
        &mut memory,
    )?;
    let mut chat = ChatRequest::new(call);
    let provider = lookup(&provider_name).ok_or_else(|| ApiError::UnknownProvider {
        requested: provider_name.clone(),
        configured: provider_names(),
    })?;
    // An empty request key is no key: it must not replace the configured one.
    let api_key = req
        .provider_api_key
        .take()
        .filter(|k| !k.expose().is_empty());
    // It goes into a header: a key that cannot be one (CR, LF, other control characters) would
    // otherwise be left out of the call, unseen.
    if let Some(key) = &api_key {
        if hyper::header::HeaderValue::from_str(key.expose()).is_err() {
            return Err(ApiError::invalid(
                "provider_api_key",
                "provider_api_key holds characters an HTTP header cannot carry (a line break or \
                 another control character); send the key alone",
            ));
        }
    }
    if api_key.is_none() {
        if let Some(remedy) = provider.missing_key_remedy() {
            return Err(ApiError::ProviderKeyMissing {
                provider: provider_name,
                remedy,
            });
        }
    }
    let (translated, dropped) = encode(&provider, &mut chat)?;
    chat.translated = translated;
    Ok(Prepared {
        trace_id,
        provider,
        chat: Arc::new(chat),
        api_key,
        cache: req.cache.unwrap_or(true),
        refresh: req.cache_refresh,
        log,
        memory: Arc::new(memory),
        ctx,
        dropped,
    })
}

/// A request as its door decoded it, its templates rendered when the request gives inputs,
/// laid over its deployment when it names one (either changes the request: it is then encoded
/// for its provider, not sent as its client wrote it), and its history placed: the provider's
/// name and the call. What was rendered is reserved in `memory`.
fn resolve(
    mut call: ModelCall,
    provider: Option<String>,
    deployment: Option<&Deployment>,
    (inputs, history): (Option<&Map<String, Value>>, Vec<Message>),
    (max_rendered, budget): (u64, &MemoryBudget),
    memory: &mut Reservation,
) -> Result<(String, ModelCall), ApiError> {
    // A Parea request's problems are named in its own words.
    let parea = call.request.wire == model::Wire::Parea;
    if let Some(inputs) = inputs {
        let request = &mut call.request;
        let system = request.system.len();
        let texts: Vec<(usize, &mut String)> = (request.system.iter_mut().enumerate())
            .chain(
                (request.messages.iter_mut().enumerate())
                    .flat_map(|(i, m)| m.content.iter_mut().map(move |b| (system + i, b))),
            )
            .filter_map(|(i, block)| match block {
                model::Block::Text(text) => Some((i, text)),
                _ => None,
            })
            .collect();
        if texts.iter().any(|(_, text)| text.contains("{{")) {
            let label = |i: usize| match parea {
                true => format!("llm_configuration.messages[{i}].content"),
                false => format!("messages[{i}].content"),
            };
            memory.absorb(render_texts(texts, label, inputs, max_rendered, budget)?);
            call.sent = None;
        }
    }
    let provider = match deployment {
        Some(d) => {
            memory.absorb(lay_under(
                d,
                &mut call.request,
                inputs,
                max_rendered,
                budget,
            )?);
            call.sent = None;
            provider.unwrap_or_else(|| d.provider.clone())
        }
        None => provider.ok_or_else(|| {
            ApiError::invalid(
                "llm_configuration.provider",
                "llm_configuration.provider is required (or a deployment_id)",
            )
        })?,
    };
    let request = &mut call.request;
    if request.model.is_empty() {
        return Err(ApiError::invalid(
            "llm_configuration.model",
            "llm_configuration.model is required (or a deployment_id)",
        ));
    }
    if !history.is_empty() {
        place_history(request, history);
        call.sent = None;
    }
    if request.messages.is_empty() && request.system.is_empty() {
        return Err(match parea {
            true => ApiError::invalid(
                "llm_configuration.messages",
                "llm_configuration.messages must hold at least one message",
            ),
            false => ApiError::invalid("messages", "messages must hold at least one message"),
        });
    }
    Ok((provider, call))
}

/// `request` laid over deployment `d`: what the request leaves unsaid (its model, messages,
/// each parameter, tools, tool choice) is the deployment's; the deployment's messages rendered
/// with `inputs` (reserved from `budget`, returned) when the request brings none.
fn lay_under(
    d: &Deployment,
    request: &mut model::Request,
    inputs: Option<&Map<String, Value>>,
    max_rendered: u64,
    budget: &MemoryBudget,
) -> Result<Reservation, ApiError> {
    let mut memory = budget.reservation();
    if request.messages.is_empty() && request.system.is_empty() {
        let (messages, rendered) = render_deployment(d, inputs, max_rendered, budget)?;
        memory.absorb(rendered);
        crate::call::configuration::parea_turns(messages, request);
    }
    if request.model.is_empty() {
        request.model.clone_from(&d.model);
    }
    let base = d.model_params.to_model();
    // The Parea SDK sends its defaults for what its caller did not set.
    let over = |value: Option<f64>, sdk_default: f64, base: Option<f64>| match request.wire {
        model::Wire::Parea => unless_sdk_default(value, sdk_default, base),
        _ => value.or(base),
    };
    let p = &request.params;
    let temperature = over(p.temperature, SDK_DEFAULT_TEMP, base.temperature);
    let top_p = over(p.top_p, SDK_DEFAULT_TOP_P, base.top_p);
    let presence = over(
        p.presence_penalty,
        SDK_DEFAULT_PRESENCE_PENALTY,
        base.presence_penalty,
    );
    let frequency = over(
        p.frequency_penalty,
        SDK_DEFAULT_FREQUENCY_PENALTY,
        base.frequency_penalty,
    );
    let p = &mut request.params;
    (p.temperature, p.top_p) = (temperature, top_p);
    (p.presence_penalty, p.frequency_penalty) = (presence, frequency);
    p.max_output_tokens = p.max_output_tokens.or(base.max_output_tokens);
    if p.response_format.is_none() {
        p.response_format = base.response_format;
    }
    if d.model_params.safe_prompt == Some(true) {
        (request.extras)
            .entry("safe_prompt")
            .or_insert(Value::Bool(true));
    }
    if request.tools.is_empty() && !d.functions.is_empty() {
        request.tools = function_tools(d.functions.clone())
            .map_err(|e| ApiError::Internal(format!("deployment {}: {e}", d.id)))?;
    }
    if request.tool_choice.is_none() {
        request.tool_choice = d.function_call.as_ref().map(FunctionCallSpec::to_model);
    }
    Ok(memory)
}

/// What the call needs to go to `provider`, encoded here so that what its wire cannot honour
/// is a 400 naming it before any upstream call, with the hints the encoding left out:
///
/// - a request to a provider called in its own wire ([`Provider::call_wire`]: an OpenAI-kind
///   provider for the OpenAI chat door and the Parea door, whose API is OpenAI's chat in its
///   own words; an Anthropic-kind one for the Messages door; one that serves the Responses
///   API for the Responses door): nothing, and its wire's headers to forward. It is sent the
///   client's body ([`ModelCall::same_wire_body`]) when unchanged, else the model encoded in
///   OpenAI's chat wire when it is sent (which refuses nothing of its own wire);
/// - anything else: the model encoded by the provider's wire.
fn encode(
    provider: &Provider,
    chat: &mut ChatRequest,
) -> Result<(Option<Bytes>, Vec<String>), ApiError> {
    let call = Arc::clone(&chat.call);
    let (request, hints) = (&call.request, &call.hints);
    let wire = provider.call_wire(chat);
    let own_wire = wire == request.wire.sent_as();
    if own_wire && (call.sent.is_some() || wire == Wire::OpenAiChat) {
        chat.forward.clone_from(&call.headers);
        return Ok((None, Vec::new()));
    }
    let encoded = match provider.kind() {
        ProviderKind::OpenAi => {
            let options = wire::openai_chat::EncodeOptions { stream: false };
            wire::openai_chat::encode_request(request, hints, &options).map(|e| (e.body, e.dropped))
        }
        ProviderKind::Anthropic => {
            let options = EncodeOptions {
                stream: false,
                default_max_tokens: provider.default_max_tokens(),
            };
            wire::anthropic::encode_request(request, hints, &options).map(|e| (e.body, e.dropped))
        }
    };
    let (body, dropped) = encoded.map_err(|e| refused(provider, e))?;
    Ok((Some(Bytes::from(body)), dropped))
}

/// What the provider's wire refuses: a parameter it cannot honour, named by the model (each
/// door names it in its own words).
fn refused(provider: &Provider, e: model::Error) -> ApiError {
    match e.param {
        Some(param) => ApiError::Refused {
            provider: provider.name().to_owned(),
            // A wire's message may start with the parameter it names.
            why: e
                .message
                .strip_prefix(&format!("{param}: "))
                .map_or_else(|| e.message.clone(), str::to_owned),
            param,
        },
        None => ApiError::InvalidRequest {
            field: None,
            message: e.message,
        },
    }
}

/// Deployment `d`'s messages rendered with `inputs`: their size counted, refused past
/// `max_rendered`, reserved from `budget` (returned), then built.
fn render_deployment(
    d: &Deployment,
    inputs: Option<&Map<String, Value>>,
    max_rendered: u64,
    budget: &MemoryBudget,
) -> Result<(Vec<Message>, Reservation), ApiError> {
    let empty = Map::new();
    let inputs = inputs.unwrap_or(&empty);
    let size = d.rendered_len(inputs);
    if size > max_rendered {
        return Err(ApiError::RenderedTooLarge {
            size,
            limit: max_rendered,
        });
    }
    let memory = budget.try_reserve(size).map_err(ApiError::ServerBusy)?;
    let messages = d.render(inputs, max_rendered).map_err(|e| match e {
        TemplateError::Missing(names) => ApiError::MissingInput(names),
        TemplateError::TooLarge { size, limit } => ApiError::RenderedTooLarge { size, limit },
        other => ApiError::Internal(format!("deployment {}: {other}", d.id)),
    })?;
    Ok((messages, memory))
}

/// The Parea Python SDK sends every `model_params` field, unset ones as its `ModelParams`
/// defaults (`parea/schemas/log.py`), so these values cannot tell "chosen" from "not set".
const SDK_DEFAULT_TEMP: f64 = 1.0;
const SDK_DEFAULT_TOP_P: f64 = 1.0;
const SDK_DEFAULT_FREQUENCY_PENALTY: f64 = 0.0;
const SDK_DEFAULT_PRESENCE_PENALTY: f64 = 0.0;

/// `over`, unless it is absent or exactly `sdk_default` while the deployment has a value.
fn unless_sdk_default(over: Option<f64>, sdk_default: f64, base: Option<f64>) -> Option<f64> {
    match (over, base) {
        (Some(v), Some(b)) if v == sdk_default => Some(b),
        (Some(v), _) => Some(v),
        (None, b) => b,
    }
}

/// `history` holds earlier turns: they go before the last user message (after the system
/// part), or at the end when there is no user message.
fn place_history(request: &mut model::Request, history: Vec<Message>) {
    let turns = history
        .into_iter()
        .filter_map(|m| Some(model::Message::text(m.role.to_model(), m.content?)));
    let messages = &mut request.messages;
    let at = messages
        .iter()
        .rposition(|m| m.role == model::Role::User)
        .unwrap_or(messages.len());
    messages.splice(at..at, turns);
}

/// Fill the templates among `texts` (each with the index of its message, named by `label` in
/// a template error) with `inputs`. The size of every text as rendered is counted first, and a
/// total over `max_rendered` is refused before anything is built; so is one that does not fit
/// `budget` now (503 `server_busy`). The reservation of what was rendered is returned; on an
/// error no text is changed.
fn render_texts(
    mut texts: Vec<(usize, &mut String)>,
    label: impl Fn(usize) -> String,
    inputs: &Map<String, Value>,
    max_rendered: u64,
    budget: &MemoryBudget,
) -> Result<Reservation, ApiError> {
    let mut templates: Vec<(usize, Template)> = Vec::new();
    let mut size: u64 = 0;
    for (k, (i, text)) in texts.iter().enumerate() {
        if !text.contains("{{") {
            size = size.saturating_add(text.len() as u64);
            continue;
        }
        let template = Template::compile(text).map_err(|e| ApiError::InvalidRequest {
            field: Some(label(*i).into()),
            message: format!("template error: {e}"),
        })?;
        size = size.saturating_add(template.rendered_len(inputs));
        templates.push((k, template));
    }
    if size > max_rendered {
        return Err(ApiError::RenderedTooLarge {
            size,
            limit: max_rendered,
        });
    }
    let memory = budget.try_reserve(size).map_err(ApiError::ServerBusy)?;
    let mut missing: Vec<String> = Vec::new();
    let mut rendered = Vec::with_capacity(templates.len());
    for (k, template) in templates {
        match template.render(inputs) {
            Ok(text) => rendered.push((k, text)),
            Err(TemplateError::Missing(names)) => {
                for name in names {
                    if !missing.contains(&name) {
                        missing.push(name);
                    }
                }
            }
            Err(e) => return Err(ApiError::Internal(e.to_string())),
        }
    }
    if !missing.is_empty() {
        return Err(ApiError::MissingInput(missing));
    }
    for (k, text) in rendered {
        *texts[k].1 = text;
    }
    Ok(memory)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::Role;

    fn msg(role: Role, content: &str) -> Message {
        Message {
            role,
            content: Some(content.to_owned()),
        }
    }

    fn texts(request: &model::Request) -> Vec<String> {
        request
            .messages
            .iter()
            .map(model::Message::joined_text)
            .collect()
    }

    #[test]
    fn history_goes_before_the_last_user_message() {
        let mut request = model::Request::new("m", Wire::Parea);
        crate::call::configuration::parea_turns(
            vec![msg(Role::System, "s"), msg(Role::User, "now")],
            &mut request,
        );
        place_history(
            &mut request,
            vec![msg(Role::User, "before"), msg(Role::Assistant, "reply")],
        );
        assert_eq!(request.system_text().as_deref(), Some("s"));
        assert_eq!(texts(&request), ["before", "reply", "now"]);
        let mut request = model::Request::new("m", Wire::Parea);
        request.system = vec![model::Block::Text("s".into())];
        let none = Message {
            role: Role::User,
            content: None,
        };
        place_history(&mut request, vec![msg(Role::User, "h"), none]);
        assert_eq!(
            texts(&request),
            ["h"],
            "at the end; a turn without content says nothing"
        );
    }

    #[test]
    fn the_sdks_default_params_leave_a_deployments_params_alone() {
        // Set in the deployment: the SDK's default does not replace it, a chosen value does.
        assert_eq!(
            unless_sdk_default(Some(1.0), SDK_DEFAULT_TEMP, Some(0.0)),
            Some(0.0)
        );
        assert_eq!(
            unless_sdk_default(Some(0.3), SDK_DEFAULT_TEMP, Some(0.0)),
            Some(0.3)
        );
        // Unset in the deployment: the SDK's value is sent, it is the provider's default too.
        assert_eq!(
            unless_sdk_default(Some(0.0), SDK_DEFAULT_FREQUENCY_PENALTY, None),
            Some(0.0)
        );
        assert_eq!(
            unless_sdk_default(None, SDK_DEFAULT_TOP_P, Some(0.5)),
            Some(0.5)
        );
    }

    fn render(
        contents: &mut [String],
        inputs: &Map<String, Value>,
        budget: &MemoryBudget,
    ) -> Result<Reservation, ApiError> {
        let texts = contents.iter_mut().enumerate().collect();
        render_texts(texts, |i| format!("m[{i}]"), inputs, u64::MAX, budget)
    }

    #[test]
    fn rendering_lists_every_missing_input_across_messages() {
        let mut contents = ["{{a}} {{b}}".to_owned(), "{{c}} {{a}}".to_owned()];
        let inputs = serde_json::json!({"b": 1})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let budget = MemoryBudget::new(u64::MAX);
        match render(&mut contents, &inputs, &budget).unwrap_err() {
            ApiError::MissingInput(names) => assert_eq!(names, vec!["a", "c"]),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(contents[0], "{{a}} {{b}}", "nothing changed");
    }

    #[test]
    fn rendering_reserves_its_size_and_is_refused_past_the_budget() {
        let template = || ["{{x}}{{x}}{{x}}{{x}}".to_owned()];
        let inputs = serde_json::json!({"x": "y".repeat(100 * 1024)})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let budget = MemoryBudget::new(1024 * 1024);
        let mut first = template();
        let held = render(&mut first, &inputs, &budget).expect("fits");
        assert_eq!(held.bytes(), 400 * 1024);
        assert_eq!(first[0].len(), 400 * 1024);
        let _second = render(&mut template(), &inputs, &budget).expect("fits");
        let mut third = template();
        let err = render(&mut third, &inputs, &budget).unwrap_err();
        assert_eq!(err.kind(), "server_busy");
        assert_eq!(err.retry_after(), Some(1));
        assert_eq!(third[0], "{{x}}{{x}}{{x}}{{x}}");
        drop(held);
        render(&mut third, &inputs, &budget).expect("fits once freed");
    }
}
