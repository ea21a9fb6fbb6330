//! The first load after a restart, against what the store kept: a broken file that declares its
//! own id, and files deleted while the daemon was down.

use promptd::deployments::Status;

use crate::{model_of, row, yaml, Fixture};

const BROKEN_YAML: &str = "provider: openai\nmodel: 'unterminated\n";

#[test]
fn a_broken_file_with_its_own_id_serves_its_stored_version_after_a_restart() {
    let mut fx = Fixture::new();
    let path = fx.write(
        "support.yaml",
        &format!("id: support-reply\n{}", yaml("good")),
    );
    drop(fx.registry());
    fx.write("support.yaml", &format!("id: support-reply\n{BROKEN_YAML}"));
    fx.reopen_db();

    let registry = fx.registry();
    assert_eq!(
        model_of(&registry, "support-reply").as_deref(),
        Some("good")
    );
    assert!(registry.get("support").is_none());
    let r = row(&registry, &path).expect("row");
    assert_eq!(r.id, "support-reply");
    assert_eq!(
        (r.status, r.serving, r.version),
        (Status::Error, true, Some(1))
    );

    // Later reloads (the watcher's path) keep it, and so does the store for the next start.
    let report = registry.reload_all();
    assert!(report.removed.is_empty(), "{report:?}");
    assert_eq!(
        model_of(&registry, "support-reply").as_deref(),
        Some("good")
    );
    drop(registry);
    fx.reopen_db();
    let registry = fx.registry();
    assert_eq!(
        model_of(&registry, "support-reply").as_deref(),
        Some("good")
    );
}

#[test]
fn files_deleted_while_the_daemon_was_down_are_dropped_from_the_store() {
    let mut fx = Fixture::new();
    fx.write("kept.yaml", &yaml("kept"));
    fx.write("broken.yaml", &yaml("broken"));
    let gone = fx.write("gone.yaml", &yaml("gone"));
    fx.write(
        "team/renamed.yaml",
        &format!("id: team-gone\n{}", yaml("gone")),
    );
    drop(fx.registry());
    std::fs::remove_file(&gone).expect("delete");
    std::fs::remove_dir_all(fx.path("team")).expect("delete folder");
    fx.write("broken.yaml", BROKEN_YAML);
    fx.reopen_db();

    let registry = fx.registry();
    assert!(registry.get("gone").is_none());
    assert!(registry.get("team-gone").is_none());
    assert_eq!(model_of(&registry, "broken").as_deref(), Some("broken"));
    assert_eq!(model_of(&registry, "kept").as_deref(), Some("kept"));
    drop(registry);

    // A start without the directory serves what the store has: only files that still exist.
    let away = fx.dir.path().join("prompts.away");
    std::fs::rename(&fx.prompts, &away).expect("move the directory away");
    fx.reopen_db();
    let registry = fx.registry();
    assert!(registry.status().dir_error.is_some());
    assert_eq!(served_ids(&registry), ["broken", "kept"]);
    drop(registry);

    // Nor does a start without the directory drop anything: it may only be unmounted.
    fx.reopen_db();
    let registry = fx.registry();
    assert_eq!(served_ids(&registry), ["broken", "kept"]);
    drop(registry);
    std::fs::rename(&away, &fx.prompts).expect("move the directory back");
    fx.reopen_db();
    let registry = fx.registry();
    assert_eq!(served_ids(&registry), ["broken", "kept"]);
}

fn served_ids(registry: &promptd::deployments::Registry) -> Vec<String> {
    registry
        .status()
        .deployments
        .into_iter()
        .filter(|r| r.serving)
        .map(|r| r.id)
        .collect()
}
