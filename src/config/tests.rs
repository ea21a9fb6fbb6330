//! Tests of the validated config: defaults, overrides, and errors that name the key.

use super::*;

fn load(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml(text, "test.toml", &Overrides::default())
}

#[test]
fn embedded_default_is_valid_and_has_its_three_providers() {
    let config = Config::load(None, &Overrides::default()).expect("default config");
    assert_eq!(
        config.provider_names(),
        vec!["anthropic", "ollama", "openai"]
    );
    let ollama = &config.providers["ollama"];
    assert_eq!(ollama.kind, ProviderKind::OpenAi);
    assert_eq!(ollama.base_url, "http://127.0.0.1:11434/v1");
    assert_eq!(ollama.api_key_source, KeySource::Keyless);
    assert_eq!(ollama.missing_key_remedy("ollama"), None);
    assert_eq!(
        config.providers["openai"].api_key_source,
        KeySource::Env("OPENAI_API_KEY".into())
    );
    assert_eq!(config.socket_mode, 0o660);
    assert_eq!(config.max_body, 4 * 1024 * 1024);
    assert_eq!(config.max_embedding_inputs, 2048);
    assert_eq!(
        config.max_rendered,
        4 * config.max_body,
        "a multiple of max_body"
    );
    assert!(config.tcp.is_none());
}

#[test]
fn unknown_key_is_named() {
    let err = load("sockett = \"/tmp/x\"").unwrap_err().to_string();
    assert!(err.contains("sockett"), "{err}");
    let err = load("[providers.x]\nkind = \"openai\"\nbase_ur = \"http://a\"").unwrap_err();
    assert!(err.to_string().contains("base_ur"), "{err}");
}

#[test]
fn log_level_is_a_level_or_a_filter() {
    for good in ["warn", "DEBUG", "promptd=debug,info", "info,sled=warn"] {
        let text = format!("log_level = \"{good}\"");
        assert_eq!(load(&text).expect(good).log_level, good);
    }
    let err = load("log_level = \"debgu\"").unwrap_err().to_string();
    assert!(err.contains("log_level") && err.contains("debgu"), "{err}");
}

#[test]
fn bad_values_name_their_key() {
    let cases = [
        ("socket_mode = \"999\"", "socket_mode"),
        ("tcp = \"0.0.0.0:1\"", "tcp"),
        ("tcp = \"nonsense\"", "tcp"),
        ("max_body = \"lots\"", "max_body"),
        ("max_rendered = \"0\"", "max_rendered"),
        ("max_request_memory = \"1MiB\"", "max_request_memory"),
        ("max_connections = 0", "max_connections"),
        ("max_embedding_inputs = 0", "max_embedding_inputs"),
        ("shutdown_grace = \"soon\"", "shutdown_grace"),
        ("[providers.p]\nkind = \"bard\"", "providers.p.kind"),
        (
            "[providers.p]\nkind = \"openai\"\nbase_url = \"ftp://x\"",
            "providers.p.base_url",
        ),
        (
            "[providers.p]\nkind = \"openai\"\ntimeout = \"x\"",
            "providers.p.timeout",
        ),
        (
            "[providers.p]\nkind = \"openai\"\nmax_response_bytes = \"0\"",
            "providers.p.max_response_bytes",
        ),
        (
            "[providers.p]\nkind = \"openai\"\nmax_event_bytes = \"big\"",
            "providers.p.max_event_bytes",
        ),
        ("[prices.m]\ninput = -1.0\noutput = 1.0", "prices.\"m\""),
        (
            "[prices.m]\ninput = 1.0\noutput = 1.0\ncache_read = -0.1",
            "prices.\"m\"",
        ),
        (
            "[prices.m]\ninput = 1.0\noutput = 1.0\ncache = 1.0",
            "cache",
        ),
        ("[cache]\nttl = \"forever\"", "cache.ttl"),
        ("[cache]\nmax_bytes = \"0\"", "cache.max_bytes"),
        ("[cache]\nsize = 1", "size"),
        ("default_provider = \"nope\"", "default_provider"),
        (
            "anthropic_default_provider = \"nope\"",
            "anthropic_default_provider",
        ),
        ("[models]\n\"gpt-x\" = \"nope\"", "models.\"gpt-x\""),
        ("[models]\n\" \" = \"openai\"", "models.\" \""),
        (
            "[providers.p]\nkind = \"openai\"\nmodels = [\"\"]",
            "providers.p.models",
        ),
    ];
    for (text, key) in cases {
        let err = load(text).unwrap_err().to_string();
        assert!(err.contains(key), "{text}: {err}");
    }
}

#[test]
fn a_key_source_is_a_key_a_variable_or_none_on_purpose() {
    let provider = |key_line: &str| {
        let text = format!("[providers.p]\nkind = \"openai\"\n{key_line}");
        load(&text).map(|c| c.providers["p"].clone())
    };
    let keyless = provider("api_key_env = \"\"").expect("keyless");
    assert_eq!(keyless.api_key_source, KeySource::Keyless);
    assert_eq!(keyless.key_status(), "none (keyless)");
    assert_eq!(keyless.missing_key_remedy("p"), None);
    let unset = provider("api_key_env = \"PROMPTD_TEST_UNSET_CONFIG_KEY\"").expect("env");
    assert_eq!(
        unset.key_status(),
        "env PROMPTD_TEST_UNSET_CONFIG_KEY (not set)"
    );
    let remedy = unset.missing_key_remedy("p").expect("a key is needed");
    assert!(
        remedy.contains("set PROMPTD_TEST_UNSET_CONFIG_KEY"),
        "{remedy}"
    );
    let undeclared = provider("").expect("undeclared");
    assert_eq!(undeclared.api_key_source, KeySource::Undeclared);
    let remedy = undeclared.missing_key_remedy("p").expect("a key is needed");
    assert!(remedy.contains("[providers.p]"), "{remedy}");
    let keyed = provider("api_key = \"sk-x\"").expect("keyed");
    assert_eq!(keyed.missing_key_remedy("p"), None);
    let err = provider("api_key = \"\"").unwrap_err().to_string();
    assert!(
        err.contains("providers.p.api_key") && err.contains("api_key_env = \"\""),
        "{err}"
    );
    let err = provider("api_key = \"k\"\napi_key_env = \"\"")
        .unwrap_err()
        .to_string();
    assert!(err.contains("providers.p.api_key"), "{err}");
}

#[test]
fn model_routing_keys_are_read() {
    let config = load(
        "default_provider = \"local\"\n[models]\n\"m1\" = \"local\"\n\
         [providers.local]\nkind = \"openai\"\nmodels = [\"a\", \"b\"]",
    )
    .expect("valid");
    assert_eq!(config.default_provider.as_deref(), Some("local"));
    assert_eq!(config.models["m1"], "local");
    assert_eq!(config.providers["local"].models, vec!["a", "b"]);
}

#[test]
fn remote_tcp_needs_allow_remote() {
    let config = load("tcp = \"0.0.0.0:8787\"\nallow_remote = true").expect("allowed");
    assert_eq!(config.tcp.map(|a| a.port()), Some(8787));
}

#[test]
fn overrides_beat_the_file() {
    let overrides = Overrides {
        socket: Some("/tmp/o.sock".into()),
        tcp: Some("127.0.0.1:9".into()),
        ..Overrides::default()
    };
    let config = Config::from_toml("socket = \"/tmp/f.sock\"", "t", &overrides).expect("valid");
    assert_eq!(config.socket, PathBuf::from("/tmp/o.sock"));
    assert_eq!(config.tcp.map(|a| a.port()), Some(9));
}

#[test]
fn explicit_providers_replace_the_defaults_and_keys_stay_secret() {
    let config = load(
        "[providers.local]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:1/v1/\"\napi_key = \"sk-secret\"",
    )
    .expect("valid");
    assert_eq!(config.provider_names(), vec!["local"]);
    let local = &config.providers["local"];
    assert_eq!(local.base_url, "http://127.0.0.1:1/v1");
    assert!(!format!("{config:?}").contains("sk-secret"));
    assert_eq!(
        local.api_key.as_ref().map(Secret::expose),
        Some("sk-secret")
    );
}

#[test]
fn prices_may_set_cache_rates() {
    let config = load("[prices.m]\ninput = 1.0\noutput = 2.0\ncache_read = 0.1").expect("valid");
    let price = config.prices["m"];
    assert_eq!(price.cache_read_per_mtok, Some(0.1));
    assert_eq!(price.cache_write_per_mtok, None);
}

#[test]
fn only_openais_own_url_serves_the_responses_api_unless_a_provider_says_so() {
    let config = Config::load(None, &Overrides::default()).expect("default config");
    assert!(config.providers["openai"].responses);
    assert!(!config.providers["ollama"].responses);
    assert!(!config.providers["anthropic"].responses);
    let config = load(
        "[providers.vllm]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:8000/v1\"\n\
         responses = true\n[providers.off]\nkind = \"openai\"\nresponses = false",
    )
    .expect("valid");
    assert!(config.providers["vllm"].responses);
    assert!(
        !config.providers["off"].responses,
        "OpenAI's URL, turned off"
    );
    let err = load("[providers.a]\nkind = \"anthropic\"\nresponses = true")
        .unwrap_err()
        .to_string();
    assert!(err.contains("providers.a.responses"), "{err}");
}

#[test]
fn responses_bounds_default_and_name_their_key() {
    let config = load("").expect("empty config");
    assert_eq!(config.responses, ResponsesConfig::default());
    assert!(config.responses.enabled);
    assert_eq!(config.responses.max_stored, 10_000);
    assert_eq!(config.responses.max_stored_bytes, 256 * 1024 * 1024);
    assert_eq!(
        config.responses.max_age,
        std::time::Duration::from_secs(30 * 24 * 3600)
    );
    let set = load("[responses]\nmax_stored = 5\nmax_stored_bytes = \"1MiB\"\nmax_age = \"1h\"")
        .expect("set");
    assert_eq!(set.responses.max_stored, 5);
    assert_eq!(set.responses.max_stored_bytes, 1024 * 1024);
    assert_eq!(set.responses.max_age, std::time::Duration::from_secs(3600));
    for (text, key) in [
        ("[responses]\nmax_stored = 0", "responses.max_stored"),
        (
            "[responses]\nmax_stored_bytes = \"lots\"",
            "responses.max_stored_bytes",
        ),
        ("[responses]\nmax_age = \"0s\"", "responses.max_age"),
        ("[responses]\nmax_agee = \"1d\"", "max_agee"),
    ] {
        let err = load(text).unwrap_err().to_string();
        assert!(err.contains(key), "{text}: {err}");
    }
}
