//! The first load after a restart, against what the store kept: a broken file that declares its
//! own id, files deleted while the daemon was down, and a sub-folder that cannot be read (at
//! start-up and on a later reload, the watcher's path).

use promptd::deployments::Status;

use crate::locked::Locked;
use crate::{model_of, providers, row, yaml, Fixture};

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

#[test]
fn an_unreadable_sub_folder_keeps_serving_its_last_good_deployments() {
    let mut fx = Fixture::new();
    fx.write("top.yaml", &yaml("top"));
    let inner = fx.write("team/inner.yaml", &yaml("inner"));
    fx.write(
        "team/named.yaml",
        &format!("id: team-named\n{}", yaml("named")),
    );
    drop(fx.registry());
    fx.reopen_db();
    fx.write("top.yaml", &yaml("top2"));
    fx.write("new.yaml", &yaml("new"));

    // At start-up: the folder's deployments serve from the store, the rest loads.
    let team = fx.path("team");
    let locked = Locked::new(&fx, &team);
    let Some(registry) = locked.unprivileged(|| fx.registry()) else {
        return;
    };
    assert_eq!(model_of(&registry, "inner").as_deref(), Some("inner"));
    assert_eq!(model_of(&registry, "team-named").as_deref(), Some("named"));
    assert_eq!(model_of(&registry, "top").as_deref(), Some("top2"));
    assert_eq!(model_of(&registry, "new").as_deref(), Some("new"));
    let r = row(&registry, &inner).expect("row of a file in the folder");
    assert_eq!(
        (r.status, r.serving, r.version),
        (Status::Error, true, Some(1))
    );
    let error = r.last_error.unwrap_or_default();
    assert!(error.contains(&*team.to_string_lossy()), "{error}");
    let status = registry.status();
    assert_eq!(status.folder_errors.len(), 1, "{status:?}");
    assert!(status.folder_errors[0].contains(&*team.to_string_lossy()));
    // `promptd validate` names the folder.
    let validation = locked
        .unprivileged(|| promptd::deployments::validate_dir(&fx.prompts, &providers()))
        .expect("locked")
        .expect("readable directory");
    let errors: Vec<String> = validation.errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        errors,
        [format!(
            "{}: cannot read the folder: Permission denied (os error 13)",
            team.display()
        )]
    );

    // A reload meanwhile (the watcher's path) keeps them, and so does the next start.
    let report = locked
        .unprivileged(|| registry.reload_all())
        .expect("locked");
    assert!(report.removed.is_empty(), "{report:?}");
    assert_eq!(model_of(&registry, "team-named").as_deref(), Some("named"));
    drop(registry);
    fx.reopen_db();
    let registry = locked.unprivileged(|| fx.registry()).expect("locked");
    assert_eq!(model_of(&registry, "inner").as_deref(), Some("inner"));

    // Readable again: the folder is the truth.
    drop(locked);
    std::fs::remove_file(&inner).expect("delete");
    registry.reload_all();
    assert!(registry.get("inner").is_none());
    assert_eq!(model_of(&registry, "team-named").as_deref(), Some("named"));
    assert!(registry.status().folder_errors.is_empty());

    // A folder that becomes unreadable while running: the same.
    let locked = Locked::new(&fx, &team);
    let report = locked
        .unprivileged(|| registry.reload_all())
        .expect("locked");
    assert!(report.removed.is_empty(), "{report:?}");
    assert_eq!(model_of(&registry, "team-named").as_deref(), Some("named"));
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
