//! Render cost per request: a 5-message deployment with 4 inputs, templates precompiled at
//! load (as the registry holds them). `cargo bench --bench render`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use promptd::call::{ModelParams, Role};
use promptd::deployments::{DeploymentContent, DeploymentMessage, Source};
use serde_json::json;

fn bench_render(c: &mut Criterion) {
    let message = |role, text: &str| {
        DeploymentMessage::new(role, text.to_owned()).expect("bench template compiles")
    };
    let deployment =
        DeploymentContent {
            id: "support-reply".into(),
            name: "Support reply".into(),
            provider: "openai".into(),
            model: "gpt-4o-mini".into(),
            model_params: ModelParams::default(),
            messages: vec![
            message(
                Role::System,
                "You answer customer questions for {{ product }}. Answer in {{language}}, in at \
                 most three sentences. Be friendly and precise; never invent features.",
            ),
            message(Role::ExampleUser, "How do I reset my password in {{product}}?"),
            message(
                Role::ExampleAssistant,
                "Open Settings, choose Account, then Reset password.",
            ),
            message(Role::User, "My account id is {{account}}."),
            message(Role::User, "{{question}}"),
        ],
            functions: Vec::new(),
            function_call: None,
        }
        .into_deployment(1, Source::File("support-reply.yaml".into()));
    let inputs = json!({
        "product": "promptd",
        "language": "English",
        "account": 123456,
        "question": "Why does my deployment not show up after I saved the file?"
    });
    let inputs = inputs.as_object().cloned().unwrap_or_default();
    c.bench_function("render 5 messages, 4 inputs", |b| {
        b.iter(|| black_box(&deployment).render(black_box(&inputs), u64::MAX))
    });
}

criterion_group!(benches, bench_render);
criterion_main!(benches);
