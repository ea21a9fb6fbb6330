//! Turn a decoded [`Call`] into a [`Prepared`] call: trace id chosen, provider
//! resolved (and its key: a provider that needs one nobody gave is refused here), messages
//! rendered and history placed, defaults applied, every check done before any upstream is
//! called.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Map, Value};

use super::RequestCtx;
use crate::call::{
    ApiError, Call, FunctionCallSpec, LlmConfiguration, Message, ModelCall, ModelParams, Role,
};
use crate::config::Secret;
use crate::deployments::{Deployment, Template, TemplateError};
use crate::logs::CompletionLog;
use crate::memory::{MemoryBudget, Reservation};
use crate::model;
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
    let (provider_name, mut chat) = match req.modeled.take() {
        Some(call) => {
            let provider = req.provider.take();
            let (provider, call) =
                resolve_modeled(*call, provider, deployment, inputs, limits, &mut memory)?;
            let chat = ChatRequest {
                model: call.request.model.clone(),
                messages: Vec::new(),
                params: ModelParams::default(),
                functions: Vec::new(),
                function_call: None,
                translated: None,
                modeled: Some(Arc::new(call)),
                forward: Vec::new(),
            };
            (provider, chat)
        }
        None => {
            // The request's configuration is taken out first: the log records the resolved
            // call (from `chat`, engine/log.rs), so it need not copy the request's.
            let overrides = req.configuration.take().unwrap_or_default();
            resolve_parea(overrides, deployment, inputs, limits, &mut memory)?
        }
    };
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

/// A Parea request's configuration laid over its deployment (when it names one), its templates
/// rendered and its history placed: the provider's name and the call. What was rendered is
/// reserved in `memory`.
fn resolve_parea(
    mut overrides: LlmConfiguration,
    deployment: Option<&Deployment>,
    inputs: Option<&Map<String, Value>>,
    (max_rendered, budget): (u64, &MemoryBudget),
    memory: &mut Reservation,
) -> Result<(String, ChatRequest), ApiError> {
    // Messages of a request are templates only when the request gives inputs: a `{{` in plain
    // text (code, other template languages) is then left alone.
    if let (Some(messages), Some(inputs)) = (&mut overrides.messages, inputs) {
        memory.absorb(render_messages(messages, inputs, max_rendered, budget)?);
    }
    let config = match deployment {
        Some(d) => {
            let (config, rendered) = merge_deployment(d, inputs, overrides, max_rendered, budget)?;
            memory.absorb(rendered);
            config
        }
        None => overrides,
    };
    let LlmConfiguration {
        model,
        provider,
        model_params,
        messages,
        history,
        functions,
        function_call,
    } = config;
    let provider = provider.filter(|p| !p.is_empty()).ok_or_else(|| {
        ApiError::invalid(
            "llm_configuration.provider",
            "llm_configuration.provider is required (or a deployment_id)",
        )
    })?;
    let model = model.filter(|m| !m.is_empty()).ok_or_else(|| {
        ApiError::invalid(
            "llm_configuration.model",
            "llm_configuration.model is required (or a deployment_id)",
        )
    })?;
    let messages = messages.unwrap_or_default();
    if messages.is_empty() {
        return Err(ApiError::invalid(
            "llm_configuration.messages",
            "llm_configuration.messages must hold at least one message",
        ));
    }
    let chat = ChatRequest {
        model,
        messages: place_history(messages, history.unwrap_or_default()),
        params: model_params.unwrap_or_default(),
        functions: functions.unwrap_or_default(),
        function_call,
        translated: None,
        modeled: None,
        forward: Vec::new(),
    };
    Ok((provider, chat))
}

/// A request a door decoded into the model, its templates rendered when the request gives
/// inputs, laid over its deployment when it names one (either changes the request: it is then
/// encoded for its provider, not sent as its client wrote it): the provider's name and the
/// call. What was rendered is reserved in `memory`.
fn resolve_modeled(
    mut call: ModelCall,
    provider: Option<String>,
    deployment: Option<&Deployment>,
    inputs: Option<&Map<String, Value>>,
    (max_rendered, budget): (u64, &MemoryBudget),
    memory: &mut Reservation,
) -> Result<(String, ModelCall), ApiError> {
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
            let label = |i: usize| format!("messages[{i}].content");
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
        None => provider.ok_or_else(|| ApiError::invalid("model", "a provider is required"))?,
    };
    if call.request.model.is_empty() {
        return Err(ApiError::invalid("model", "a model is required"));
    }
    if call.request.messages.is_empty() && call.request.system.is_empty() {
        return Err(ApiError::invalid(
            "messages",
            "messages must hold at least one message",
        ));
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
        crate::call::configuration::parea_turns(&messages, request);
    }
    if request.model.is_empty() {
        request.model.clone_from(&d.model);
    }
    let base = d.model_params.to_model();
    let p = &mut request.params;
    p.temperature = p.temperature.or(base.temperature);
    p.top_p = p.top_p.or(base.top_p);
    p.max_output_tokens = p.max_output_tokens.or(base.max_output_tokens);
    p.presence_penalty = p.presence_penalty.or(base.presence_penalty);
    p.frequency_penalty = p.frequency_penalty.or(base.frequency_penalty);
    if p.response_format.is_none() {
        p.response_format = base.response_format;
    }
    if d.model_params.safe_prompt == Some(true) {
        (request.extras)
            .entry("safe_prompt")
            .or_insert(Value::Bool(true));
    }
    if request.tools.is_empty() && !d.functions.is_empty() {
        let tools = d.functions.iter().map(crate::providers::openai::tool);
        let mut decoder = wire::openai_chat::Decoder::default();
        decoder
            .field("tools".into(), Value::Array(tools.collect()))
            .map_err(|e| ApiError::Internal(format!("deployment {}: {e}", d.id)))?;
        request.tools = std::mem::take(&mut decoder.request().tools);
    }
    if request.tool_choice.is_none() {
        request.tool_choice = d.function_call.as_ref().map(FunctionCallSpec::to_model);
    }
    Ok(memory)
}

/// What the call needs to go to `provider`, encoded here so that what its wire cannot honour
/// is a 400 naming it before any upstream call, with the hints the encoding left out:
///
/// - a Parea request to an OpenAI-kind provider: nothing (it is sent the request's own fields,
///   [`crate::providers::openai::request_body`]);
/// - a request decoded into the model ([`ChatRequest::modeled`]), unchanged since, to a
///   provider called in its own wire ([`Provider::call_wire`]: an OpenAI-kind provider for the
///   OpenAI chat door, an Anthropic-kind one for the Messages door, one that serves the
///   Responses API for the Responses door): nothing (it is sent the client's body,
///   [`ModelCall::same_wire_body`]), and its wire's headers to forward;
/// - anything else: the model ([`ChatRequest::to_model`], or the decoded one) encoded by the
///   provider's wire.
fn encode(
    provider: &Provider,
    chat: &mut ChatRequest,
) -> Result<(Option<Bytes>, Vec<String>), ApiError> {
    let refused = |e: model::Error| refused(provider, e);
    let modeled = chat.modeled.clone();
    let to_model;
    let (request, hints) = match (provider.kind(), &modeled) {
        (ProviderKind::OpenAi, None) => return Ok((None, Vec::new())),
        (_, Some(call)) if call.sent.is_some() && provider.call_wire(chat) == call.request.wire => {
            chat.forward.clone_from(&call.headers);
            return Ok((None, Vec::new()));
        }
        (_, Some(call)) => (&call.request, &call.hints),
        (ProviderKind::Anthropic, None) => {
            // What the client sent that is malformed is its own mistake, not a refusal.
            to_model = chat.to_model().map_err(|e| ApiError::InvalidRequest {
                message: e.to_string(),
                field: e.param.map(Into::into),
            })?;
            (&to_model.request, &to_model.hints)
        }
    };
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
    let (body, dropped) = encoded.map_err(refused)?;
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

/// A deployment with the request's `llm_configuration` laid over it field by field (model
/// parameters one by one); the deployment's messages rendered with `inputs`, their bytes
/// reserved from `budget` before they are built.
fn merge_deployment(
    d: &Deployment,
    inputs: Option<&Map<String, Value>>,
    o: LlmConfiguration,
    max_rendered: u64,
    budget: &MemoryBudget,
) -> Result<(LlmConfiguration, Reservation), ApiError> {
    let (messages, memory) = match o.messages {
        Some(messages) => (messages, budget.reservation()),
        None => render_deployment(d, inputs, max_rendered, budget)?,
    };
    let config = LlmConfiguration {
        model: o.model.or_else(|| Some(d.model.clone())),
        provider: o.provider.or_else(|| Some(d.provider.clone())),
        model_params: Some(merge_params(&d.model_params, o.model_params)),
        messages: Some(messages),
        history: o.history,
        functions: o
            .functions
            .or_else(|| (!d.functions.is_empty()).then(|| d.functions.clone())),
        function_call: o.function_call.or_else(|| d.function_call.clone()),
    };
    Ok((config, memory))
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

/// `over`'s parameters where given, else the deployment's; a value that is exactly the Parea
/// SDK's default counts as not given when the deployment sets that parameter (the SDK sends
/// its defaults whether or not the caller set anything). Destructured, so a new parameter does
/// not compile until it is merged here too.
fn merge_params(base: &ModelParams, over: Option<ModelParams>) -> ModelParams {
    let Some(ModelParams {
        temp,
        top_p,
        frequency_penalty,
        presence_penalty,
        max_length,
        response_format,
        safe_prompt,
    }) = over
    else {
        return base.clone();
    };
    ModelParams {
        temp: unless_sdk_default(temp, SDK_DEFAULT_TEMP, base.temp),
        top_p: unless_sdk_default(top_p, SDK_DEFAULT_TOP_P, base.top_p),
        frequency_penalty: unless_sdk_default(
            frequency_penalty,
            SDK_DEFAULT_FREQUENCY_PENALTY,
            base.frequency_penalty,
        ),
        presence_penalty: unless_sdk_default(
            presence_penalty,
            SDK_DEFAULT_PRESENCE_PENALTY,
            base.presence_penalty,
        ),
        // The SDK's defaults of these are null, which already means "not given".
        max_length: max_length.or(base.max_length),
        response_format: response_format.or_else(|| base.response_format.clone()),
        safe_prompt: safe_prompt.or(base.safe_prompt),
    }
}

/// `over`, unless it is absent or exactly `sdk_default` while the deployment has a value.
fn unless_sdk_default(over: Option<f64>, sdk_default: f64, base: Option<f64>) -> Option<f64> {
    match (over, base) {
        (Some(v), Some(b)) if v == sdk_default => Some(b),
        (Some(v), _) => Some(v),
        (None, b) => b,
    }
}

/// `history` holds earlier turns: they go before the last user message (after any system
/// prompt), or at the end when there is no user message.
fn place_history(mut messages: Vec<Message>, history: Vec<Message>) -> Vec<Message> {
    if history.is_empty() {
        return messages;
    }
    let at = messages
        .iter()
        .rposition(|m| m.role == Role::User)
        .unwrap_or(messages.len());
    messages.splice(at..at, history);
    messages
}

/// Fill a request's own templates with `inputs` ([`render_texts`] of its turns' contents).
fn render_messages(
    messages: &mut [Message],
    inputs: &Map<String, Value>,
    max_rendered: u64,
    budget: &MemoryBudget,
) -> Result<Reservation, ApiError> {
    let texts = (messages.iter_mut().enumerate())
        .filter_map(|(i, m)| m.content.as_mut().map(|c| (i, c)))
        .collect();
    let label = |i: usize| format!("llm_configuration.messages[{i}].content");
    render_texts(texts, label, inputs, max_rendered, budget)
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

    fn msg(role: Role, content: &str) -> Message {
        Message {
            role,
            content: Some(content.to_owned()),
        }
    }

    #[test]
    fn history_goes_before_the_last_user_message() {
        let placed = place_history(
            vec![msg(Role::System, "s"), msg(Role::User, "now")],
            vec![msg(Role::User, "before"), msg(Role::Assistant, "reply")],
        );
        let contents: Vec<_> = placed
            .iter()
            .map(|m| m.content.as_deref().unwrap_or(""))
            .collect();
        assert_eq!(contents, vec!["s", "before", "reply", "now"]);
        let placed = place_history(vec![msg(Role::System, "s")], vec![msg(Role::User, "h")]);
        assert_eq!(placed.len(), 2);
        assert_eq!(placed[1].content.as_deref(), Some("h"));
    }

    #[test]
    fn the_sdks_default_params_leave_a_deployments_params_alone() {
        let deployment = ModelParams {
            temp: Some(0.0),
            top_p: Some(0.5),
            max_length: Some(400),
            ..ModelParams::default()
        };
        let sdk_defaults = ModelParams {
            temp: Some(1.0),
            top_p: Some(1.0),
            frequency_penalty: Some(0.0),
            presence_penalty: Some(0.0),
            ..ModelParams::default()
        };
        let merged = merge_params(&deployment, Some(sdk_defaults.clone()));
        assert_eq!(merged.temp, Some(0.0));
        assert_eq!(merged.top_p, Some(0.5));
        assert_eq!(merged.max_length, Some(400));
        // Unset in the deployment: the SDK's value is sent, it is the provider's default too.
        assert_eq!(merged.frequency_penalty, Some(0.0));
        let chosen = ModelParams {
            temp: Some(0.3),
            presence_penalty: Some(0.1),
            ..sdk_defaults
        };
        let merged = merge_params(&deployment, Some(chosen));
        assert_eq!(merged.temp, Some(0.3));
        assert_eq!(merged.top_p, Some(0.5));
        assert_eq!(merged.presence_penalty, Some(0.1));
    }

    #[test]
    fn rendering_lists_every_missing_input_across_messages() {
        let mut messages = vec![
            msg(Role::System, "{{a}} {{b}}"),
            msg(Role::User, "{{c}} {{a}}"),
        ];
        let inputs = serde_json::json!({"b": 1})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let budget = MemoryBudget::new(u64::MAX);
        match render_messages(&mut messages, &inputs, u64::MAX, &budget).unwrap_err() {
            ApiError::MissingInput(names) => assert_eq!(names, vec!["a", "c"]),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn rendering_reserves_its_size_and_is_refused_past_the_budget() {
        let template = || vec![msg(Role::User, "{{x}}{{x}}{{x}}{{x}}")];
        let inputs = serde_json::json!({"x": "y".repeat(100 * 1024)})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let budget = MemoryBudget::new(1024 * 1024);
        let mut first = template();
        let held = render_messages(&mut first, &inputs, u64::MAX, &budget).expect("fits");
        assert_eq!(held.bytes(), 400 * 1024);
        let _second = render_messages(&mut template(), &inputs, u64::MAX, &budget).expect("fits");
        let mut third = template();
        let err = render_messages(&mut third, &inputs, u64::MAX, &budget).unwrap_err();
        assert_eq!(err.kind(), "server_busy");
        assert_eq!(err.retry_after(), Some(1));
        assert_eq!(third[0].content.as_deref(), Some("{{x}}{{x}}{{x}}{{x}}"));
        drop(held);
        render_messages(&mut third, &inputs, u64::MAX, &budget).expect("fits once freed");
    }
}
