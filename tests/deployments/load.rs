//! Loading a directory: many files, duplicate ids, versions, rendering.

use std::time::Instant;

use promptd::deployments::{Registry, Status};
use serde_json::json;

use crate::{model_of, providers, row, yaml, Fixture};

#[test]
fn a_thousand_files_load_at_start() {
    let fx = Fixture::new();
    for i in 0..1000 {
        let folder = format!("group-{:02}", i % 20);
        match i % 3 {
            0 => fx.write(&format!("{folder}/p{i:04}.yaml"), &yaml("gpt-4o-mini")),
            1 => fx.write(
                &format!("{folder}/p{i:04}.toml"),
                "provider = \"anthropic\"\nmodel = \"claude\"\n[model_params]\ntemp = 0.5\n\
                 [[messages]]\nrole = \"system\"\ncontent = \"Be brief about {{topic}}.\"\n\
                 [[messages]]\nrole = \"user\"\ncontent = \"{{question}}\"\n",
            ),
            _ => fx.write(
                &format!("{folder}/p{i:04}.json"),
                r#"{"provider": "openai", "model": "gpt-4o", "messages": [{"role": "user", "content": "Translate {{text}} to {{language}}"}], "functions": [{"name": "f", "parameters": {"type": "object"}}]}"#,
            ),
        };
    }
    let started = Instant::now();
    let registry = Registry::open(&fx.prompts, providers(), fx.tree());
    let cold = started.elapsed();
    let status = registry.status();
    assert_eq!(status.deployments.len(), 1000);
    assert!(status.deployments.iter().all(|r| r.status == Status::Ok));
    assert!(registry.get("p0999").is_some());

    let started = Instant::now();
    let report = registry.reload_all();
    let unchanged = started.elapsed();
    assert!(report.changed.is_empty() && report.errors.is_empty());

    fx.write("group-00/p0000.yaml", &yaml("changed"));
    let started = Instant::now();
    let report = registry.reload_all();
    let one_changed = started.elapsed();
    assert_eq!(report.changed, vec!["p0000".to_owned()]);
    println!(
        "1,000 prompt files (debug build): start-up load {cold:?}; reload with nothing \
         changed {unchanged:?}; reload with one file changed {one_changed:?}"
    );
}

#[test]
fn two_files_with_the_same_id_are_both_refused() {
    let fx = Fixture::new();
    let a = fx.write("a.yaml", &format!("id: shared\n{}", yaml("a")));
    let b = fx.write("sub/b.json", r#"{"id": "shared", "provider": "openai", "model": "b", "messages": [{"role": "user", "content": "x"}]}"#);
    fx.write("fine.yaml", &yaml("ok"));
    let registry = fx.registry();
    assert!(registry.get("shared").is_none());
    assert_eq!(model_of(&registry, "fine").as_deref(), Some("ok"));
    for (path, other) in [(&a, &b), (&b, &a)] {
        let r = row(&registry, path).expect("row");
        assert_eq!(r.status, Status::Error);
        assert!(!r.serving);
        let error = r.last_error.unwrap_or_default();
        assert!(error.contains(&*path.to_string_lossy()), "{error}");
        assert!(error.contains(&*other.to_string_lossy()), "{error}");
        assert!(error.contains("`shared`"), "{error}");
    }

    // Removing one of them lets the other serve.
    std::fs::remove_file(&b).expect("remove");
    registry.reload_all();
    assert_eq!(model_of(&registry, "shared").as_deref(), Some("a"));

    // A duplicate added later: both refused, the last good version keeps serving.
    fx.write("c.yaml", &format!("id: shared\n{}", yaml("c")));
    let report = registry.reload_all();
    assert_eq!(report.errors.len(), 2);
    assert_eq!(model_of(&registry, "shared").as_deref(), Some("a"));
}

#[test]
fn versions_count_up_on_change_and_survive_restarts_and_deletes() {
    let mut fx = Fixture::new();
    fx.write("v.yaml", &yaml("one"));
    let registry = fx.registry();
    assert_eq!(registry.get("v").map(|d| d.version), Some(1));
    // A comment or layout change keeps the version: the hash is over the content.
    fx.write("v.yaml", &format!("# a comment\n{}", yaml("one")));
    registry.reload_all();
    assert_eq!(registry.get("v").map(|d| d.version), Some(1));
    fx.write("v.yaml", &yaml("two"));
    registry.reload_all();
    assert_eq!(registry.get("v").map(|d| d.version), Some(2));
    drop(registry);

    fx.reopen_db();
    let registry = fx.registry();
    assert_eq!(registry.get("v").map(|d| d.version), Some(2));
    fx.write("v.yaml", &yaml("three"));
    registry.reload_all();
    assert_eq!(registry.get("v").map(|d| d.version), Some(3));

    std::fs::remove_file(fx.path("v.yaml")).expect("delete");
    registry.reload_all();
    assert!(registry.get("v").is_none());
    fx.write("v.yaml", &yaml("four"));
    registry.reload_all();
    assert_eq!(registry.get("v").map(|d| d.version), Some(4));

    // An explicit version wins.
    fx.write("v.yaml", &format!("version: 40\n{}", yaml("four")));
    registry.reload_all();
    assert_eq!(registry.get("v").map(|d| d.version), Some(40));
}

#[test]
fn a_loaded_deployment_renders_and_answers_deployed_prompt() {
    let fx = Fixture::new();
    fx.write("greet.yaml", &yaml("m"));
    let registry = fx.registry();
    let d = registry.get("greet").expect("served");
    let inputs = json!({"who": "Ada", "question": "Why?", "unused": 1});
    let inputs = inputs.as_object().expect("object");
    let messages = d.render(inputs, u64::MAX).expect("renders");
    assert_eq!(messages[0].content.as_deref(), Some("You help Ada."));
    assert_eq!(messages[1].content.as_deref(), Some("Why?"));
    let missing = d.render(&serde_json::Map::new(), u64::MAX).unwrap_err();
    assert_eq!(missing.to_string(), "missing inputs: who, question");
    let body = serde_json::to_value(d.prompt_response(Some(inputs), u64::MAX).expect("renders"))
        .expect("json");
    assert_eq!(body["deployment_id"], "greet");
    assert_eq!(body["version_number"], 1);
    assert_eq!(
        body["prompt"]["raw_messages"][0]["content"],
        "You help {{who}}."
    );
    assert_eq!(body["prompt"]["messages"][0]["content"], "You help Ada.");
    assert_eq!(body["provider"], "openai");
}

#[test]
fn the_shipped_examples_load() {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/prompts");
    let fx = Fixture::new();
    let registry = Registry::open(&examples, providers(), fx.tree());
    let status = registry.status();
    assert_eq!(status.deployments.len(), 3, "{status:#?}");
    for r in &status.deployments {
        assert_eq!(r.status, Status::Ok, "{r:?}");
    }
    let support = registry.get("support-reply").expect("yaml example");
    let inputs = json!({"product": "promptd", "language": "English", "question": "Hi?"});
    let messages = support
        .render(inputs.as_object().expect("object"), u64::MAX)
        .expect("renders");
    let system = messages[0].content.as_deref().unwrap_or("");
    assert!(
        system.contains("You answer customer questions for promptd."),
        "{system}"
    );
    assert!(system.contains("Templates look like {{name}};"), "{system}");
    assert_eq!(registry.get("summarize").map(|d| d.version), Some(3));
    let contact = registry.get("extract-contact").expect("json example");
    assert_eq!(contact.functions.len(), 1);
}

#[test]
fn validate_dir_checks_without_serving() {
    let fx = Fixture::new();
    fx.write("ok.yaml", &yaml("m"));
    fx.write("a.yaml", &format!("id: same\n{}", yaml("m")));
    fx.write("b.yaml", &format!("id: same\n{}", yaml("m")));
    fx.write("bad.toml", "provider = ");
    let report = promptd::deployments::validate_dir(&fx.prompts, &providers()).expect("readable");
    assert_eq!(report.files, 4);
    let mut errors: Vec<String> = report.errors.iter().map(|e| e.to_string()).collect();
    errors.sort();
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert!(
        errors[0].contains("a.yaml: id `same` is declared by both"),
        "{errors:#?}"
    );
    assert!(
        errors[2].contains("bad.toml:1: invalid TOML"),
        "{errors:#?}"
    );
    assert!(promptd::deployments::validate_dir(&fx.path("missing"), &providers()).is_err());
}
