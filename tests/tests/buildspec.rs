//! The buildspecs and the example pipeline are files people copy: they must parse, and every
//! `harbormaster` command they run must exist in the CLI (checked with `--help`).

use harbormaster_e2e::{cli_binary, workspace_root};
use yaml_rust2::{Yaml, YamlLoader};

fn commands(doc: &Yaml) -> Vec<String> {
    let mut out = Vec::new();
    if let Yaml::Hash(phases) = &doc["phases"] {
        for (_, phase) in phases {
            if let Yaml::Array(cmds) = &phase["commands"] {
                out.extend(cmds.iter().filter_map(|c| c.as_str().map(str::to_owned)));
            }
        }
    }
    out
}

#[test]
fn buildspecs_parse_and_name_only_commands_the_cli_has() {
    let mut checked = 0;
    for name in ["build.yml", "deploy.yml", "config.yml"] {
        let text = std::fs::read_to_string(workspace_root().join("buildspec").join(name)).unwrap();
        let docs = YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let doc = &docs[0];
        assert_eq!(
            doc["version"].as_f64(),
            Some(0.2),
            "{name}: buildspec version"
        );
        let cmds = commands(doc);
        assert!(!cmds.is_empty(), "{name}: no commands");
        for c in cmds.iter().filter(|c| c.starts_with("harbormaster ")) {
            // The subcommand and each flag it passes must be in the subcommand's help.
            let words: Vec<&str> = c.split_whitespace().collect();
            let sub = words[1];
            let out = std::process::Command::new(cli_binary().unwrap())
                .args([sub, "--help"])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{name}: `harbormaster {sub}` does not exist"
            );
            let help = String::from_utf8_lossy(&out.stdout);
            for flag in words.iter().filter(|w| w.starts_with("--")) {
                assert!(
                    help.contains(*flag),
                    "{name}: `{flag}` is not an option of `harbormaster {sub}`"
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 2, "deploy.yml runs validate and deploy");
}

#[test]
fn the_example_pipeline_has_the_five_stages_wired_to_the_agent() {
    let text =
        std::fs::read_to_string(workspace_root().join("examples/pipeline/pipeline.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let stages: Vec<&str> = v["pipeline"]["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        stages,
        ["Source", "Build", "Staging", "Approve", "Production"]
    );
    let prod = &v["pipeline"]["stages"][4]["actions"][0]["configuration"];
    assert_eq!(prod["FunctionName"], "harbormaster-pipeline-job");
    let params =
        harbormaster_core::pipeline::JobParams::parse(prod["UserParameters"].as_str()).unwrap();
    assert_eq!(params.promote_from.as_deref(), Some("staging"));
    let staging = &v["pipeline"]["stages"][2]["actions"][0]["configuration"];
    harbormaster_core::pipeline::JobParams::parse(staging["UserParameters"].as_str()).unwrap();
}

/// Issue 33, item 5: the example builds one multi-platform index (web runs ARM64, the worker
/// X86_64), with emulation for the other architecture, and hands on the index's digest from
/// buildx's metadata file, never a tag. Checked as text: no Docker engine here.
#[test]
fn item_5_the_build_pushes_one_index_for_both_architectures_and_hands_on_its_digest() {
    let text =
        std::fs::read_to_string(harbormaster_e2e::workspace_root().join("buildspec/build.yml"))
            .unwrap();
    for needed in [
        "docker buildx build",
        "linux/amd64,linux/arm64",
        "--metadata-file build-metadata.json",
        "--push",
        "containerimage.digest",
        "binfmt",
    ] {
        assert!(
            text.contains(needed),
            "buildspec/build.yml lacks `{needed}`"
        );
    }
    assert!(
        !text.contains("docker inspect"),
        "the digest comes from buildx, not a local image"
    );
}

/// Issue 33, supply chain: the buildspecs verify the CLI archive they download against the
/// digest pinned in the project's environment before unpacking it.
#[test]
fn the_buildspecs_verify_the_cli_archive_before_unpacking_it() {
    for file in ["buildspec/config.yml", "buildspec/deploy.yml"] {
        let text = std::fs::read_to_string(harbormaster_e2e::workspace_root().join(file)).unwrap();
        let check = text
            .find("sha256sum -c")
            .unwrap_or_else(|| panic!("{file} verifies nothing"));
        let unpack = text
            .find("tar -xzf")
            .unwrap_or_else(|| panic!("{file} unpacks nothing"));
        assert!(check < unpack, "{file} unpacks before it verifies");
        assert!(text.contains("HARBORMASTER_SHA256"), "{file}");
    }
}
