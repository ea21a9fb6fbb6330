//! Which provider or deployment an OpenAI-route `model` names, and the model list of
//! `GET /v1/models`.
//!
//! Rules, in order: `deployment/ID` is a deployed prompt; `NAME/MODEL` with `NAME` a configured
//! provider is that provider's `MODEL`; a bare name goes to the provider `[models]` maps it to,
//! else to the (first, by name) provider whose `models` list has it, else to
//! `default_provider`. Anything else is unknown (404 `model_not_found`).

use serde::Serialize;

use crate::call::ApiError;
use crate::config::Config;

/// The prefix of deployment models.
pub const DEPLOYMENT_PREFIX: &str = "deployment/";

/// Where a model's requests go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Provider { provider: String, model: String },
    Deployment(String),
}

/// Resolve `model` against the config's providers and routing keys.
pub fn resolve_model(model: &str, config: &Config) -> Result<Target, ApiError> {
    resolve_model_or(model, config, config.default_provider.as_deref())
}

/// [`resolve_model`] with `default` as the provider of a bare name no other rule places (a
/// door's own default: the Messages door's `anthropic_default_provider`).
pub fn resolve_model_or(
    model: &str,
    config: &Config,
    default: Option<&str>,
) -> Result<Target, ApiError> {
    if let Some(id) = model.strip_prefix(DEPLOYMENT_PREFIX) {
        if !id.is_empty() {
            return Ok(Target::Deployment(id.to_owned()));
        }
    }
    if let Some((provider, rest)) = model.split_once('/') {
        if config.providers.contains_key(provider) && !rest.is_empty() {
            return Ok(Target::Provider {
                provider: provider.to_owned(),
                model: rest.to_owned(),
            });
        }
    }
    let to = |provider: &str| Target::Provider {
        provider: provider.to_owned(),
        model: model.to_owned(),
    };
    if let Some(provider) = config.models.get(model) {
        return Ok(to(provider));
    }
    if let Some((name, _)) = config
        .providers
        .iter()
        .find(|(_, p)| p.models.iter().any(|m| m == model))
    {
        return Ok(to(name));
    }
    if let Some(provider) = default {
        return Ok(to(provider));
    }
    Err(ApiError::ModelNotFound(format!(
        "The model `{model}` does not exist or you do not have access to it: promptd knows no \
         provider for it. Write it as PROVIDER/MODEL (providers: {}), map it in [models], list \
         it in a provider's `models`, or set default_provider",
        config.provider_names().join(", ")
    )))
}

/// One entry of `GET /v1/models`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ModelEntry {
    pub id: String,
    pub object: &'static str,
    pub created: i64,
    pub owned_by: String,
}

/// `GET /v1/models`: `{"object": "list", "data": [...]}`.
#[derive(Debug, Serialize)]
pub struct ModelList {
    pub object: &'static str,
    pub data: Vec<ModelEntry>,
}

/// Every model promptd serves by name: each provider's `models` (or, when its table lists none,
/// the `discovered` ids it reported itself) as `PROVIDER/MODEL`, the bare names of `[models]`
/// and of `models` lists, every deployment as `deployment/ID`.
pub fn list(
    config: &Config,
    discovered: &std::collections::BTreeMap<String, Vec<String>>,
    deployments: &[String],
    created: i64,
) -> ModelList {
    let entry = |id: String, owned_by: &str| ModelEntry {
        id,
        object: "model",
        created,
        owned_by: owned_by.to_owned(),
    };
    let mut data = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (name, p) in &config.providers {
        for m in &p.models {
            data.push(entry(format!("{name}/{m}"), name));
        }
        if p.models.is_empty() {
            for m in discovered.get(name).into_iter().flatten() {
                data.push(entry(format!("{name}/{m}"), name));
            }
        }
    }
    for (model, provider) in &config.models {
        seen.insert(model.clone());
        data.push(entry(model.clone(), provider));
    }
    for (name, p) in &config.providers {
        for m in &p.models {
            if seen.insert(m.clone()) {
                data.push(entry(m.clone(), name));
            }
        }
    }
    for id in deployments {
        data.push(entry(format!("{DEPLOYMENT_PREFIX}{id}"), "promptd"));
    }
    ModelList {
        object: "list",
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Overrides;

    fn config() -> Config {
        Config::from_toml(
            "default_provider = \"b\"\n[models]\n\"gpt-x\" = \"a\"\n\
             [providers.a]\nkind = \"openai\"\nmodels = [\"m1\"]\n\
             [providers.b]\nkind = \"openai\"\nmodels = [\"m2\", \"gpt-x\"]",
            "t",
            &Overrides::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn to(provider: &str, model: &str) -> Target {
        Target::Provider {
            provider: provider.into(),
            model: model.into(),
        }
    }

    #[test]
    fn each_rule_in_order() {
        let c = config();
        assert_eq!(resolve_model("a/m9", &c).ok(), Some(to("a", "m9")));
        assert_eq!(
            resolve_model("deployment/greet", &c).ok(),
            Some(Target::Deployment("greet".into()))
        );
        assert_eq!(
            resolve_model("gpt-x", &c).ok(),
            Some(to("a", "gpt-x")),
            "[models] first"
        );
        assert_eq!(resolve_model("m2", &c).ok(), Some(to("b", "m2")));
        assert_eq!(resolve_model("m1", &c).ok(), Some(to("a", "m1")));
        assert_eq!(resolve_model("other", &c).ok(), Some(to("b", "other")));
        assert_eq!(
            resolve_model("org/model", &c).ok(),
            Some(to("b", "org/model")),
            "a prefix that is no provider is part of the name"
        );
    }

    #[test]
    fn no_default_provider_means_unknown() {
        let mut c = config();
        c.default_provider = None;
        assert!(matches!(
            resolve_model("other", &c),
            Err(ApiError::ModelNotFound(_))
        ));
    }

    #[test]
    fn the_list_has_providers_models_aliases_and_deployments() {
        let ids: Vec<String> = list(&config(), &Default::default(), &["greet".into()], 0)
            .data
            .into_iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(
            ids,
            vec![
                "a/m1",
                "b/m2",
                "b/gpt-x",
                "gpt-x",
                "m1",
                "m2",
                "deployment/greet"
            ]
        );
    }
}
