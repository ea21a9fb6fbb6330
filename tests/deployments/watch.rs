//! The real watcher: create, edit, atomic save, delete, broken edit then fix, new folders, a
//! replaced directory, an unreadable sub-folder, and the save-to-served latency.

use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use promptd::deployments::{spawn_watcher, Status};

use crate::locked::Locked;
use crate::{model_of, row, row_with, wait_for, yaml, Fixture};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_edit_atomic_save_and_delete_are_followed() {
    let fx = Fixture::new();
    let registry = fx.registry();
    let watcher = spawn_watcher(registry.clone()).expect("watch");

    fx.write("greet.yaml", &yaml("m1"));
    wait_for("a new file to be served", || {
        model_of(&registry, "greet").filter(|m| m == "m1")
    })
    .await;
    assert_eq!(registry.get("greet").map(|d| d.version), Some(1));

    fx.write("greet.yaml", &yaml("m2"));
    wait_for("an in-place edit", || {
        model_of(&registry, "greet").filter(|m| m == "m2")
    })
    .await;
    assert_eq!(registry.get("greet").map(|d| d.version), Some(2));

    fx.save_atomically("greet.yaml", &yaml("m3"));
    wait_for("an atomic save", || {
        model_of(&registry, "greet").filter(|m| m == "m3")
    })
    .await;
    assert_eq!(registry.get("greet").map(|d| d.version), Some(3));
    // The hidden temp file never became a deployment of its own.
    assert_eq!(registry.status().deployments.len(), 1);

    // A move to another name is a delete of one id and a create of another.
    std::fs::rename(fx.path("greet.yaml"), fx.path("hello.yaml")).expect("move");
    wait_for("a move", || registry.get("hello")).await;
    wait_for("the old id to go", || {
        registry.get("greet").is_none().then_some(())
    })
    .await;

    std::fs::remove_file(fx.path("hello.yaml")).expect("delete");
    wait_for("a delete", || registry.get("hello").is_none().then_some(())).await;
    assert!(registry.status().deployments.is_empty());
    watcher.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_edit_keeps_the_last_good_version_until_fixed() {
    let fx = Fixture::new();
    let path = fx.write("greet.yaml", &yaml("good"));
    fx.write("other.json", r#"{"provider": "anthropic", "model": "c", "messages": [{"role": "user", "content": "hi"}]}"#);
    let registry = fx.registry();
    let watcher = spawn_watcher(registry.clone()).expect("watch");
    assert_eq!(model_of(&registry, "greet").as_deref(), Some("good"));

    fx.save_atomically(
        "greet.yaml",
        "provider: openai\nmodel: broken\nmessages:\n  - role: user\n    content: hello {{name\n",
    );
    let broken = wait_for("the error to show", || {
        row_with(&registry, &path, Status::Error)
    })
    .await;
    let error = broken.last_error.unwrap_or_default();
    assert!(error.contains("greet.yaml:5"), "{error}");
    assert!(error.contains("unclosed `{{`"), "{error}");
    assert!(broken.serving);
    assert_eq!(broken.version, Some(1));
    assert_eq!(model_of(&registry, "greet").as_deref(), Some("good"));
    assert_eq!(model_of(&registry, "other").as_deref(), Some("c"));

    fx.save_atomically("greet.yaml", &yaml("fixed"));
    wait_for("the fix", || {
        model_of(&registry, "greet").filter(|m| m == "fixed")
    })
    .await;
    let fixed = row(&registry, &path).expect("row");
    assert_eq!(fixed.status, Status::Ok);
    assert_eq!(fixed.last_error, None);
    assert_eq!(fixed.version, Some(2));
    watcher.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_folders_created_after_start_are_watched() {
    let fx = Fixture::new();
    let registry = fx.registry();
    let watcher = spawn_watcher(registry.clone()).expect("watch");
    fx.write(
        "team/a/deep/one.toml",
        "provider = \"openai\"\nmodel = \"m\"\n[[messages]]\nrole = \"user\"\ncontent = \"hi\"\n",
    );
    wait_for("a file in new nested folders", || registry.get("one")).await;
    // A file added later to the new folder (watched only once the folder was seen).
    fx.write("team/a/deep/two.yaml", &yaml("m"));
    wait_for("a second file there", || registry.get("two")).await;
    std::fs::remove_dir_all(fx.path("team")).expect("remove folder");
    wait_for("the folder's removal", || {
        (registry.get("one").is_none() && registry.get("two").is_none()).then_some(())
    })
    .await;
    watcher.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_directory_is_watched_again() {
    let fx = Fixture::new();
    fx.write("old.yaml", &yaml("m"));
    let registry = fx.registry();
    let watcher = spawn_watcher(registry.clone()).expect("watch");
    assert!(registry.get("old").is_some());

    // Deploy a new directory by renaming it over the old one's place.
    let staged = fx.dir.path().join("prompts.new");
    std::fs::create_dir(&staged).expect("staging dir");
    std::fs::write(staged.join("new.yaml"), yaml("m")).expect("write");
    std::fs::rename(&fx.prompts, fx.dir.path().join("prompts.old")).expect("move old away");
    std::fs::rename(&staged, &fx.prompts).expect("move new in");
    wait_for("the new directory's file", || registry.get("new")).await;
    wait_for("the old directory's file to go", || {
        registry.get("old").is_none().then_some(())
    })
    .await;

    // The new directory itself is watched.
    fx.write("later.yaml", &yaml("m"));
    wait_for("a file in the new directory", || registry.get("later")).await;
    watcher.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_is_served_within_500_ms() {
    let fx = Fixture::new();
    for i in 0..999 {
        fx.write(&format!("filler/{:02}/f{i:03}.yaml", i % 10), &yaml("m"));
    }
    fx.write("hot.yaml", &yaml("v0"));
    let registry = fx.registry();
    let watcher = spawn_watcher(registry.clone()).expect("watch");
    let mut latencies = Vec::new();
    for i in 1..=20 {
        let model = format!("v{i}");
        let saved = Instant::now();
        if i % 2 == 0 {
            fx.save_atomically("hot.yaml", &yaml(&model));
        } else {
            fx.write("hot.yaml", &yaml(&model));
        }
        wait_for("the save to be served", || {
            model_of(&registry, "hot").filter(|m| *m == model)
        })
        .await;
        latencies.push(saved.elapsed());
    }
    latencies.sort();
    let median = latencies[latencies.len() / 2];
    println!(
        "save-to-served latency over 20 saves (1,000 files in the directory, debug build): median {median:?}, \
         min {:?}, max {:?}",
        latencies[0],
        latencies[latencies.len() - 1]
    );
    assert_eq!(registry.get("hot").map(|d| d.version), Some(21));
    watcher.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_created_after_start_is_picked_up() {
    let fx = Fixture::new();
    std::fs::remove_dir(&fx.prompts).expect("remove prompts dir");
    let registry = fx.registry();
    assert!(registry.status().dir_error.is_some());
    let watcher = spawn_watcher(registry.clone()).expect("watch");
    fx.write("late.yaml", &yaml("m"));
    wait_for("the directory's first file", || registry.get("late")).await;
    assert_eq!(registry.status().dir_error, None);
    watcher.stop().await;
}

#[test]
fn with_an_unreadable_sub_folder_changes_are_followed_and_its_deployments_serve() {
    let fx = Fixture::new();
    fx.write("team/inner.yaml", &yaml("inner"));
    let registry = fx.registry();
    // The unprivileged thread adds files.
    std::fs::set_permissions(&fx.prompts, std::fs::Permissions::from_mode(0o777))
        .expect("open the prompts directory");
    let locked = Locked::new(&fx, &fx.path("team"));
    locked.unprivileged(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let logs = captured_logs();
            let watcher = spawn_watcher(registry.clone()).expect("watch");
            for i in 0..3 {
                let name = format!("late{i}");
                fx.write(&format!("{name}.yaml"), &yaml("late"));
                wait_for("a file added beside the unreadable folder", || {
                    registry.get(&name)
                })
                .await;
            }
            assert_eq!(model_of(&registry, "inner").as_deref(), Some("inner"));
            let r = row(&registry, &fx.path("team/inner.yaml")).expect("row");
            assert_eq!((r.status, r.serving), (Status::Error, true));
            watcher.stop().await;

            // inotify cannot watch the folder, which fails the recursive watch: logged once,
            // not at every retry.
            let logs = String::from_utf8_lossy(&logs.lock().expect("logs")).into_owned();
            let failed_watch = format!(
                "cannot watch the prompts directory {}:",
                fx.prompts.display()
            );
            assert_eq!(logs.matches(&failed_watch).count(), 1, "{logs}");
        });
    });
}

/// Every log line of this test binary from now on (the subscriber is global: the watcher logs
/// from the runtime's threads). Tests look for lines naming their own fixture's paths.
fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    #[derive(Clone)]
    struct Captured(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            let mut logs = self.0.lock().unwrap_or_else(|e| e.into_inner());
            logs.extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let logs = Arc::new(Mutex::new(Vec::new()));
    let writer = Captured(logs.clone());
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber");
    logs
}
