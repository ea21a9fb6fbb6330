//! The sled copy: serving after a restart without the prompts directory, skipping entries of
//! an unknown format.

use promptd::deployments::Status;

use crate::{model_of, row, yaml, Fixture};

#[test]
fn a_restart_without_the_directory_serves_from_the_store() {
    let mut fx = Fixture::new();
    fx.write("a.yaml", &yaml("ma"));
    fx.write("nested/b.toml", "provider = \"anthropic\"\nmodel = \"mb\"\n[[messages]]\nrole = \"user\"\ncontent = \"{{x}}\"\n");
    let registry = fx.registry();
    assert_eq!(registry.status().deployments.len(), 2);
    drop(registry);

    std::fs::remove_dir_all(&fx.prompts).expect("remove prompts dir");
    fx.reopen_db();
    let registry = fx.registry();
    let status = registry.status();
    assert!(
        status
            .dir_error
            .as_deref()
            .unwrap_or("")
            .contains("cannot read the prompts directory"),
        "{status:?}"
    );
    assert_eq!(status.deployments.len(), 2);
    assert!(status
        .deployments
        .iter()
        .all(|r| r.status == Status::FromStore && r.serving));
    assert_eq!(model_of(&registry, "a").as_deref(), Some("ma"));
    let b = registry.get("b").expect("served from store");
    assert_eq!(b.model, "mb");
    let x = serde_json::json!({"x": "rendered"});
    let rendered = b
        .render(x.as_object().expect("object"), u64::MAX)
        .expect("renders");
    assert_eq!(rendered[0].content.as_deref(), Some("rendered"));

    // A reload while the directory is still missing keeps serving.
    registry.reload_all();
    assert!(registry.get("a").is_some());

    // Once the directory is back it is the truth again.
    fx.write("a.yaml", &yaml("ma2"));
    registry.reload_all();
    assert_eq!(model_of(&registry, "a").as_deref(), Some("ma2"));
    assert!(registry.get("b").is_none());
    assert_eq!(
        row(&registry, &fx.path("a.yaml")).map(|r| r.status),
        Some(Status::Ok)
    );
}

#[test]
fn an_unknown_format_entry_is_skipped() {
    let mut fx = Fixture::new();
    fx.write("good.yaml", &yaml("m"));
    drop(fx.registry());
    let tree = fx.tree();
    tree.insert("file/future", vec![200u8, 1, 2, 3, 4])
        .expect("insert");
    tree.insert("file/truncated", vec![1u8, 9]).expect("insert");
    tree.insert("upstream/odd", vec![7u8]).expect("insert");
    drop(tree);
    std::fs::remove_dir_all(&fx.prompts).expect("remove prompts dir");
    fx.reopen_db();
    let registry = fx.registry();
    let ids: Vec<String> = registry
        .status()
        .deployments
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, vec!["good".to_owned()]);
    assert!(registry.get("future").is_none());
}

#[test]
fn a_file_broken_while_the_daemon_was_down_serves_its_stored_version() {
    let mut fx = Fixture::new();
    let path = fx.write("a.yaml", &yaml("good"));
    drop(fx.registry());
    fx.write("a.yaml", "provider: openai\nmodel: 'unterminated\n");
    fx.reopen_db();
    let registry = fx.registry();
    assert_eq!(model_of(&registry, "a").as_deref(), Some("good"));
    let r = row(&registry, &path).expect("row");
    assert_eq!(r.status, Status::Error);
    assert!(r.serving);
    assert!(r.last_error.unwrap_or_default().contains("invalid YAML"));
}
