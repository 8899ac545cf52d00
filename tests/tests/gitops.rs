//! Git is the source of truth beyond the image, on the emulator (issue 17): a change to a
//! template and to a variable in the GitOps folder reaches the service within one tick, as one
//! new revision and one notification; the next ten ticks change nothing.

use harbormaster_aws::handler;
use harbormaster_core::RunOptions;
use harbormaster_e2e::{World, FAMILY};

/// Changes a file of the GitOps folder, as a commit would.
fn edit(path: &std::path::Path, change: impl FnOnce(String) -> String) {
    let text = std::fs::read_to_string(path).unwrap();
    std::fs::write(path, change(text)).unwrap();
}

/// A first release of web, pushed and followed by one tick: the report of that tick.
async fn first_release(
    w: &World,
    tag: &str,
    event: &str,
) -> harbormaster_core::dispatch::DispatchReport {
    let digest = w.push_image(tag).await.unwrap();
    let push = w.push_event(event, tag, &digest);
    w.push(&push).await;
    w.tick().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_and_variable_change_in_git_is_rolled_out_by_the_next_tick() {
    let w = World::start().await.unwrap();
    let t = first_release(&w, "main-9170000", "e-git").await;
    assert!(t.errors().is_empty(), "{t:?}");
    let deployed = w.service_task_definition("web").await.unwrap();
    let revisions = w.revisions(FAMILY).await.unwrap().len();
    for _ in 0..3 {
        w.tick().await;
    }
    assert_eq!(
        w.revisions(FAMILY).await.unwrap().len(),
        revisions,
        "nothing new yet"
    );
    // The inbox is read (and emptied) here: what comes after is the config release's.
    w.inbox().await.unwrap();

    // In git: web gets more memory and a new variable in dev.
    let dir = &w.config_dir;
    let template = dir.join("taskdefs/web.json");
    edit(&template, |text| {
        text.replace("\"memory\": \"1024\"", "\"memory\": \"2048\"")
    });
    let config = dir.join("harbormaster.toml");
    edit(&config, |text| {
        text.replacen(
            "variables = { DJANGO_DEBUG = \"false\" }",
            "variables = { DJANGO_DEBUG = \"false\", FEATURE_X = \"on\" }",
            1,
        )
    });

    let t = w.tick().await;
    assert!(t.errors().is_empty(), "{t:?}");
    let now = w.service_task_definition("web").await.unwrap();
    assert_ne!(now, deployed, "rolled out by the tick");
    assert_eq!(
        w.revisions(FAMILY).await.unwrap().len(),
        revisions + 1,
        "one new revision"
    );
    let td = w.task_definition(&now).await.unwrap();
    assert_eq!(td.memory(), Some("2048"));
    let web = &td.container_definitions()[0];
    assert!(web
        .environment()
        .iter()
        .any(|e| e.name() == Some("FEATURE_X") && e.value() == Some("on")));
    assert_eq!(
        web.image(),
        w.task_definition(&deployed)
            .await
            .unwrap()
            .container_definitions()[0]
            .image(),
        "the same image"
    );
    let inbox = w.inbox().await.unwrap();
    let new: Vec<_> = inbox
        .iter()
        .filter(|(_, m, _)| m["service"] == "web" && m["kind"] == "started")
        .collect();
    assert_eq!(new.len(), 1, "{inbox:?}");
    assert!(
        new[0].1["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("config in git changed"),
        "{:?}",
        new[0]
    );

    // Ten more ticks: the rollout finishes (the notification says what changed), then nothing
    // changes.
    w.tick().await;
    let done: Vec<_> = w
        .inbox()
        .await
        .unwrap()
        .into_iter()
        .filter(|(_, m, _)| m["service"] == "web" && m["kind"] == "succeeded")
        .collect();
    assert_eq!(done.len(), 1, "{done:?}");
    let said = done[0].1["reason"].as_str().unwrap_or_default().to_owned();
    assert!(
        said.contains("memory: 1024 → 2048") && said.contains("FEATURE_X"),
        "{said}"
    );
    let settled = w.revisions(FAMILY).await.unwrap().len();
    let state = w.state_document("dev", "web").await.unwrap();
    for _ in 0..10 {
        let t = w.tick().await;
        assert!(t.errors().is_empty(), "{t:?}");
    }
    assert_eq!(w.revisions(FAMILY).await.unwrap().len(), settled);
    assert_eq!(w.service_task_definition("web").await.unwrap(), now);
    assert_eq!(
        w.state_document("dev", "web").await.unwrap(),
        state,
        "not even the state document"
    );
}

/// A console-style change — UpdateService to another revision, made by the test — is reported
/// once as drift; with `self_heal` the next tick puts the desired revision back (issue 17).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_outside_git_is_reported_once_and_self_heal_puts_it_back() {
    let w = World::start().await.unwrap();
    let config = w.config_dir.join("harbormaster.toml");
    edit(&config, |text| {
        format!("{text}\n[agent]\ndrift_check_minutes = 1\n")
    });
    first_release(&w, "main-d71f700", "e-drift").await;
    let deployed = w.service_task_definition("web").await.unwrap();
    w.inbox().await.unwrap();

    // Someone points the service at the revision it ran before, by hand.
    let before = w.revisions(FAMILY).await.unwrap()[0].clone();
    assert_ne!(before, deployed);
    w.clients
        .ecs
        .update_service()
        .cluster(harbormaster_e2e::CLUSTER)
        .service("web")
        .task_definition(&before)
        .send()
        .await
        .unwrap();
    for _ in 0..3 {
        let t = w.tick().await;
        assert!(t.errors().is_empty(), "{t:?}");
    }
    let drift: Vec<_> = w
        .inbox()
        .await
        .unwrap()
        .into_iter()
        .filter(|(_, m, _)| m["kind"] == "drift" && m["service"] == "web")
        .collect();
    assert_eq!(drift.len(), 1, "reported once: {drift:?}");
    assert_eq!(
        w.service_task_definition("web").await.unwrap(),
        before,
        "only reported"
    );
    let out = w.cli(&["status", "--env", "dev", "--service", "web"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("DRIFT:"),
        "{out:?}"
    );

    // With self_heal, the next tick puts the desired revision back.
    edit(&config, |text| {
        text.replace(
            "drift_check_minutes = 1\n",
            "drift_check_minutes = 1\nself_heal = true\n",
        )
    });
    let t = w.tick().await;
    assert!(t.errors().is_empty(), "{t:?}");
    let healed = w.service_task_definition("web").await.unwrap();
    assert_ne!(healed, before, "put back");
    let td = w.task_definition(&healed).await.unwrap();
    assert_eq!(
        td.container_definitions()[0].image(),
        w.task_definition(&deployed)
            .await
            .unwrap()
            .container_definitions()[0]
            .image()
    );
}

/// `diff` (issue 17, point 5): exit 0 while the service runs what git says, 1 after a change in
/// git, naming the changed fields; secrets appear by ARN, never by value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_says_what_git_would_change() {
    let w = World::start().await.unwrap();
    first_release(&w, "main-d1ff000", "e-diff").await;
    let same = w.cli(&["diff", "--env", "dev", "--service", "web"]);
    let text = String::from_utf8_lossy(&same.stdout);
    assert_eq!(
        same.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&same.stderr)
    );
    assert!(text.contains("dev/web: as git says"), "{text}");

    let template = w.config_dir.join("taskdefs/web.json");
    edit(&template, |t| {
        t.replace("\"memory\": \"1024\"", "\"memory\": \"2048\"")
    });
    let changed = w.cli(&["diff", "--env", "dev", "--service", "web"]);
    let text = String::from_utf8_lossy(&changed.stdout);
    assert_eq!(changed.status.code(), Some(1), "{text}");
    assert!(text.contains("memory: 1024 → 2048"), "{text}");
    let json = w.cli(&["diff", "--env", "dev", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let web = v
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["service"] == "web")
        .unwrap();
    assert_eq!(web["changes"][0]["path"], "memory", "{v}");
    assert!(!text.contains("CANARY"), "no secret value");

    // A service setting outside the task definition is a difference too, field by field
    // (issue 30; issue 34's first finding).
    let toml = w.config_dir.join("harbormaster.toml");
    // (web's count belongs to its target tracking: a setting the agent sends, then.)
    edit(&toml, |t| {
        t.replacen(
            "health_check_grace_period_seconds = 60\n",
            "health_check_grace_period_seconds = 90\n",
            1,
        )
    });
    let settings = w.cli(&["diff", "--env", "dev", "--service", "web"]);
    let text = String::from_utf8_lossy(&settings.stdout);
    assert_eq!(settings.status.code(), Some(1), "{text}");
    assert!(
        text.contains("service.health_check_grace_period_seconds: 60 → 90"),
        "{text}"
    );
}

/// `init` (issue 17, point 6) on a service that runs: the template it writes is one `validate`
/// accepts, and with it in git `diff` finds nothing to change — its rendering is what runs,
/// apart from the image, which the agent pins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_writes_a_template_whose_rendering_is_what_runs() {
    let w = World::start().await.unwrap();
    first_release(&w, "main-1417000", "e-init").await;
    // Written over the example's own template: what init makes must stand in for it.
    let template = w.config_dir.join("taskdefs/web.json");
    let original = std::fs::read_to_string(&template).unwrap();
    let init = [
        "init",
        "--env",
        "dev",
        "--service",
        "web",
        "--cluster",
        harbormaster_e2e::CLUSTER,
    ];
    // Issue 32, finding 5: a template that exists is never overwritten without --force.
    let refused = w.cli(&init);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && err.contains("--force"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&template).unwrap(), original);
    let out = w.cli(&[&init[..], &["--force"]].concat());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let block = String::from_utf8_lossy(&out.stdout);
    assert!(
        block.contains("[services.web]") && block.contains("repository = \"booking/web\""),
        "{block}"
    );
    let written = std::fs::read_to_string(&template).unwrap();
    assert_ne!(written, original, "written from what runs");
    assert!(written.contains("booking-${env}-web"), "{written}");
    assert!(
        !written.contains("taskDefinitionArn") && !written.contains("sha256:"),
        "{written}"
    );
    assert!(w.cli(&["validate"]).status.success());
    let diff = w.cli(&["diff", "--env", "dev", "--service", "web"]);
    let text = String::from_utf8_lossy(&diff.stdout);
    assert!(text.contains("dev/web: as git says"), "{text}{written}");
    // The template's text is not the one the release ran with: the tick would make a config
    // release (of the same definition), and diff says so rather than "nothing to do".
    assert!(text.contains("the next tick releases it"), "{text}");
    assert_eq!(diff.status.code(), Some(1), "{text}");
}

/// `publish` (issue 17, point 1): the folder, checked, becomes one immutable bundle and then the
/// pointer moves; the functions (an S3 source) read what the pointer names. A publish stopped
/// between the two steps (`--stage-only` is exactly that) leaves them on the previous version;
/// of two publishes at once the second to move the pointer is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_moves_the_functions_to_a_whole_new_version_or_not_at_all() {
    use harbormaster_aws::publish::Destination;
    use harbormaster_core::ports::ErrorKind;
    use harbormaster_core::publish::Bundles;

    let w = World::start().await.unwrap();
    let to = format!("s3://{}/gitops", harbormaster_e2e::BUCKET);
    let s3 = aws_sdk_s3::Client::new(&w.sdk);
    let functions = harbormaster_aws::Source::parse(&to, &s3.clone().into());
    let version = |b: &harbormaster_core::Bundle| b.config_version("dev", "web").unwrap();

    w.commit("the booking app");
    w.cli_ok(&["publish", "--to", &to]);
    let v1 = version(&harbormaster_core::Bundle::load(&functions).await.unwrap());

    // Staged, not current: the functions stay where they were.
    let template = w.config_dir.join("taskdefs/web.json");
    edit(&template, |t| {
        t.replace("\"memory\": \"1024\"", "\"memory\": \"2048\"")
    });
    w.commit("web: 2 GB");
    w.cli_ok(&["publish", "--to", &to, "--stage-only"]);
    assert_eq!(
        version(&harbormaster_core::Bundle::load(&functions).await.unwrap()),
        v1
    );

    // Two at once: one reads the pointer, the other publishes; the first is then refused.
    let dest = Destination::parse(&to, s3.clone()).unwrap();
    let (read_before, etag) = dest.current().await.unwrap().unwrap();
    w.cli_ok(&["publish", "--to", &to]);
    let v2 = version(&harbormaster_core::Bundle::load(&functions).await.unwrap());
    assert_ne!(v2, v1, "the new version is current");
    let refused = dest.point(Some(&etag), &read_before).await.unwrap_err();
    assert_eq!(refused.kind, ErrorKind::Conflict, "{refused}");
    assert_eq!(
        version(&harbormaster_core::Bundle::load(&functions).await.unwrap()),
        v2
    );

    // A folder that does not validate uploads nothing.
    std::fs::write(&template, "{ not json").unwrap();
    w.commit("broken");
    let out = w.cli(&["publish", "--to", &to]);
    assert!(!out.status.success());
    assert_eq!(
        version(&harbormaster_core::Bundle::load(&functions).await.unwrap()),
        v2
    );
    let history = w.cli(&["publish", "--to", &to, "--history"]);
    assert_eq!(String::from_utf8_lossy(&history.stdout).lines().count(), 2);
}

/// Issue 30, findings 3, 4 and 13 on the emulator: an older commit (a late or re-run build)
/// never moves the pointer back unless `--allow-older` says so (and the history shows it);
/// `--activate` takes only a staged digest; a bundle changed in S3 after it was published is
/// refused by the functions, not deployed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_only_moves_forward_and_the_functions_read_only_what_was_published() {
    let w = World::start().await.unwrap();
    let to = format!("s3://{}/gitops", harbormaster_e2e::BUCKET);
    let s3 = aws_sdk_s3::Client::new(&w.sdk);
    let functions = harbormaster_aws::Source::parse(&to, &s3.clone().into());
    let version = || async {
        let b = harbormaster_core::Bundle::load(&functions).await.unwrap();
        b.config_version("dev", "web").unwrap()
    };

    let c1 = w.commit("the booking app");
    w.cli_ok(&["publish", "--to", &to]);
    let v1 = version().await;
    edit(&w.config_dir.join("taskdefs/web.json"), |t| {
        t.replace("\"memory\": \"1024\"", "\"memory\": \"2048\"")
    });
    w.commit("web: 2 GB");
    w.cli_ok(&["publish", "--to", &to]);
    let v2 = version().await;
    assert_ne!(v1, v2);

    // A late build of the first commit: refused (exit 1), nothing moves.
    w.checkout(&c1);
    let late = w.cli(&["publish", "--to", &to]);
    let said = String::from_utf8_lossy(&late.stderr);
    assert_eq!(late.status.code(), Some(1), "{said}");
    assert!(
        said.contains("does not descend") && said.contains("git revert"),
        "{said}"
    );
    assert_eq!(version().await, v2);
    // The break-glass: it moves, and the history says how.
    w.cli_ok(&["publish", "--to", &to, "--allow-older"]);
    assert_eq!(version().await, v1);
    let history = w.cli_ok(&["publish", "--to", &to, "--history"]);
    let text = String::from_utf8_lossy(&history.stdout);
    let first = text.lines().next().unwrap_or("");
    assert!(
        first.contains(&c1) && first.contains("--allow-older"),
        "{text}"
    );

    // --activate: never a path, never a digest not staged here.
    for bad in ["../../state/dev/web", &format!("sha256-{}", "0".repeat(64))] {
        let out = w.cli(&["publish", "--to", &to, "--activate", bad]);
        let said = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {said}");
        assert!(
            said.contains("not a bundle digest") || said.contains("not staged"),
            "{said}"
        );
    }

    // A published object changed behind the agent's back: the functions refuse the bundle.
    let pointer: serde_json::Value = {
        let got = s3
            .get_object()
            .bucket(harbormaster_e2e::BUCKET)
            .key("gitops/current.json")
            .send()
            .await
            .unwrap();
        serde_json::from_slice(&got.body.collect().await.unwrap().into_bytes()).unwrap()
    };
    let key = format!(
        "gitops/bundles/{}/taskdefs/web.json",
        pointer["bundle"].as_str().unwrap()
    );
    let fresh = harbormaster_aws::Source::parse(&to, &s3.clone().into());
    s3.put_object()
        .bucket(harbormaster_e2e::BUCKET)
        .key(&key)
        .body(
            b"{\"family\": \"booking-${env}-web\", \"containerDefinitions\": []}"
                .to_vec()
                .into(),
        )
        .send()
        .await
        .unwrap();
    let e = harbormaster_core::Bundle::load(&fresh)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("does not match its name"), "{e}");
}

/// The whole path (issue 17): a template change published from git reaches the service within
/// one tick of the functions reading the published pointer, as one revision whose notification
/// names the commit; ten more ticks change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_change_reaches_the_service_in_one_tick_naming_its_commit() {
    let w = World::start().await.unwrap();
    first_release(&w, "main-9ab1000", "e-pub").await;
    let to = format!("s3://{}/gitops", harbormaster_e2e::BUCKET);
    let s3 = aws_sdk_s3::Client::new(&w.sdk);
    let functions = harbormaster_aws::Agent::of(
        w.ports(),
        harbormaster_aws::Source::parse(&to, &s3.clone().into()),
    );
    let tick = || async {
        let scheduled = harbormaster_e2e::fixture("scheduled.json");
        handler::dispatch(&functions, handler::TICK, &scheduled, RunOptions::default())
            .await
            .unwrap()
    };
    let publish = |message: &str| {
        let commit = w.commit(message);
        w.cli_ok(&["publish", "--to", &to]);
        commit
    };
    publish("the booking app");
    tick().await;
    let revisions = w.revisions(FAMILY).await.unwrap().len();
    assert_eq!(
        w.revisions(FAMILY).await.unwrap().len(),
        revisions,
        "the same config: nothing"
    );
    w.inbox().await.unwrap();

    let template = w.config_dir.join("taskdefs/web.json");
    edit(&template, |t| {
        t.replace("\"memory\": \"1024\"", "\"memory\": \"2048\"")
    });
    let commit = publish("web: 2 GB");
    let r = tick().await;
    assert!(r.errors().is_empty(), "{r:?}");
    assert_eq!(w.revisions(FAMILY).await.unwrap().len(), revisions + 1);
    let running = w.service_task_definition("web").await.unwrap();
    assert_eq!(
        w.task_definition(&running).await.unwrap().memory(),
        Some("2048")
    );
    let started: Vec<_> = w
        .inbox()
        .await
        .unwrap()
        .into_iter()
        .filter(|(_, m, _)| m["service"] == "web" && m["kind"] == "started")
        .collect();
    assert_eq!(started.len(), 1, "{started:?}");
    let why = started[0].1["reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(why.contains(&format!("commit {}", &commit[..12])), "{why}");
    tick().await;
    let settled = w.revisions(FAMILY).await.unwrap().len();
    for _ in 0..10 {
        assert!(tick().await.errors().is_empty());
    }
    assert_eq!(w.revisions(FAMILY).await.unwrap().len(), settled);
}
