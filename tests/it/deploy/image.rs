//! The image as the Dockerfile builds it: its ENTRYPOINT + CMD and HEALTHCHECK run for real,
//! and what can only be read (user, labels, platforms, pinned bases, the LICENSE inside).

use std::collections::BTreeMap;

use super::*;

/// The final stage of a Dockerfile, instruction by instruction (continuations joined).
pub struct Dockerfile {
    pub instructions: Vec<(String, String)>,
    pub all: Vec<(String, String)>,
}

impl Dockerfile {
    pub fn parse(path: &str) -> Dockerfile {
        let text = read(path).replace("\\\n", " ");
        let all: Vec<(String, String)> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| {
                let (name, rest) = l.split_once(' ').unwrap_or((l, ""));
                (name.to_ascii_uppercase(), rest.trim().to_string())
            })
            .collect();
        let last_from = all.iter().rposition(|(n, _)| n == "FROM").unwrap();
        Dockerfile {
            instructions: all[last_from..].to_vec(),
            all,
        }
    }

    pub fn get(&self, name: &str) -> Vec<&str> {
        self.instructions
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// An exec-form (JSON array) instruction's argv; the last one wins, as in Docker.
    pub fn exec_form(&self, name: &str) -> Vec<String> {
        let value = self
            .get(name)
            .last()
            .copied()
            .unwrap_or_else(|| panic!("no {name}"));
        serde_json::from_str(value)
            .unwrap_or_else(|e| panic!("{name} must be exec form (a JSON array): {value}: {e}"))
    }

    /// `COPY src dest` of the final stage: dest -> source (`None` for `--from=` stages).
    pub fn copies(&self) -> Vec<(String, Option<String>)> {
        self.get("COPY")
            .into_iter()
            .map(|c| {
                let parts: Vec<&str> = c.split_whitespace().collect();
                let from_stage = parts.iter().any(|p| p.starts_with("--from="));
                let operands: Vec<&str> = parts
                    .iter()
                    .copied()
                    .filter(|p| !p.starts_with("--"))
                    .collect();
                let dest = operands.last().unwrap().to_string();
                (dest, (!from_stage).then(|| operands[0].to_string()))
            })
            .collect()
    }

    /// HEALTHCHECK's CMD argv.
    pub fn healthcheck(&self) -> Vec<String> {
        let value = self.get("HEALTHCHECK")[0];
        let json = &value[value
            .find("CMD [")
            .expect("HEALTHCHECK ... CMD [exec form]")
            + 4..];
        serde_json::from_str(json).unwrap()
    }
}

/// The image's files: every `COPY` of the final stage, read from the build context.
pub fn image_files(dockerfile: &Dockerfile, context: &str) -> BTreeMap<String, Option<Vec<u8>>> {
    let mut files = BTreeMap::new();
    for (dest, source) in dockerfile.copies() {
        let content = source.map(|s| {
            std::fs::read(repo(context).join(&s))
                .unwrap_or_else(|e| panic!("COPY {s}: not in the build context {context}: {e}"))
        });
        files.insert(dest, content);
    }
    files
}

/// What `docker run IMAGE` starts.
pub fn image_container() -> Container {
    let dockerfile = Dockerfile::parse("Dockerfile");
    let mut files = image_files(&dockerfile, ".");
    // Only text files are laid out; the LICENSE is checked below.
    files.retain(|path, _| !path.ends_with("/LICENSE"));
    Container {
        artefact: "Dockerfile ENTRYPOINT + CMD".into(),
        argv: compose_argv(
            &dockerfile.exec_form("ENTRYPOINT"),
            &dockerfile.exec_form("CMD"),
            None,
            None,
        ),
        files,
        probes: vec![Probe::Exec(dockerfile.healthcheck())],
        ..Container::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_run_image_starts_and_its_healthcheck_passes() {
    let run = run_container(&image_container()).await;
    assert_eq!(run.metrics_status, 200);
    assert!(run.metrics.contains("ssm_association_executions_total{"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_run_image_with_flags_replaces_cmd_and_still_starts() {
    // `docker run IMAGE --config.file=/config/mine.yaml --log.level=debug` (README).
    let dockerfile = Dockerfile::parse("Dockerfile");
    let mut container = image_container();
    container.artefact = "docker run IMAGE --config.file=... (README)".into();
    container.argv = compose_argv(
        &dockerfile.exec_form("ENTRYPOINT"),
        &dockerfile.exec_form("CMD"),
        None,
        Some(vec![
            "--config.file=/config/mine.yaml".into(),
            "--log.level=debug".into(),
        ]),
    );
    container.files.insert(
        "/config/mine.yaml".into(),
        Some(std::fs::read(repo("config/minimal.yaml")).unwrap()),
    );
    // The HEALTHCHECK names :9832, the default the overriding flags leave in place.
    let run = run_container(&container).await;
    assert_eq!(run.metrics_status, 200);
}

#[test]
fn the_entrypoint_is_the_binary_alone_and_cmd_holds_the_flags() {
    let dockerfile = Dockerfile::parse("Dockerfile");
    assert_eq!(dockerfile.exec_form("ENTRYPOINT"), [IMAGE_BINARY]);
    let cmd = dockerfile.exec_form("CMD");
    assert!(cmd.iter().all(|a| a.starts_with("--")), "{cmd:?}");
    assert!(cmd.contains(&"--config.file=/etc/ssm-association-exporter/config.yaml".to_string()));
}

#[test]
fn the_runtime_image_runs_as_a_non_root_user_and_exposes_9832() {
    let dockerfile = Dockerfile::parse("Dockerfile");
    let user = dockerfile.get("USER").last().copied().expect("USER");
    assert!(
        !matches!(user.split(':').next(), Some("root" | "0")),
        "USER {user}"
    );
    assert!(dockerfile.instructions[0].1.contains(":nonroot"));
    assert_eq!(dockerfile.get("EXPOSE"), ["9832"]);
}

#[test]
fn the_image_carries_oci_labels_and_the_license() {
    let dockerfile = Dockerfile::parse("Dockerfile");
    let labels = dockerfile.get("LABEL").join(" ");
    for key in [
        "title",
        "description",
        "licenses",
        "version",
        "revision",
        "source",
        "documentation",
    ] {
        assert!(
            labels.contains(&format!("org.opencontainers.image.{key}=")),
            "LABEL org.opencontainers.image.{key}"
        );
    }
    assert!(labels.contains("org.opencontainers.image.licenses=\"Apache-2.0\""));
    let license = image_files(&dockerfile, ".")
        .into_iter()
        .find(|(path, _)| path.ends_with("/LICENSE"))
        .and_then(|(_, content)| content)
        .expect("COPY LICENSE into the image");
    let license = String::from_utf8(license).unwrap();
    assert!(license.contains("Apache License") && license.contains("Version 2.0"));
    let ignore = read(".dockerignore");
    assert!(
        !ignore.lines().any(|l| l == "LICENSE"),
        ".dockerignore keeps LICENSE out"
    );
}

#[test]
fn base_images_are_pinned_by_tag_and_digest_and_the_build_is_locked() {
    let dockerfile = Dockerfile::parse("Dockerfile");
    let froms: Vec<&String> = dockerfile
        .all
        .iter()
        .filter(|(n, _)| n == "FROM")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(froms.len(), 2);
    for from in &froms {
        let image = from
            .split_whitespace()
            .find(|p| !p.starts_with("--"))
            .unwrap();
        let (name, digest) = image.split_once("@sha256:").unwrap_or((image, ""));
        let tag = name.rsplit_once(':').map(|(_, t)| t).unwrap_or("");
        assert!(!tag.is_empty() && tag != "latest", "unpinned tag: {from}");
        assert_eq!(digest.len(), 64, "no digest: {from}");
        assert!(digest.bytes().all(|b| b.is_ascii_hexdigit()));
    }
    assert!(
        froms[0].contains("docker.io/library/rust:1.95.0-"),
        "the builder pins the toolchain"
    );
    let text = read("Dockerfile");
    assert!(
        text.contains("docker buildx imagetools inspect"),
        "how to refresh the digests"
    );
    assert_eq!(text.matches("cargo build --release --locked").count(), 2);
    let ignore = read(".dockerignore");
    for entry in ["target/", ".git/"] {
        assert!(
            ignore.lines().any(|l| l == entry),
            ".dockerignore lacks {entry}"
        );
    }
}

#[test]
fn the_builder_cross_compiles_for_the_target_platform_without_emulation() {
    let dockerfile = Dockerfile::parse("Dockerfile");
    let build_from = &dockerfile.all.iter().find(|(n, _)| n == "FROM").unwrap().1;
    assert!(
        build_from.starts_with("--platform=$BUILDPLATFORM "),
        "the builder runs on the build machine's platform: {build_from}"
    );
    let text = read("Dockerfile");
    for needle in [
        "ARG TARGETARCH",
        "gcc-aarch64-linux-gnu",
        "rustup target add",
        "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc",
        "CARGO_BUILD_TARGET",
    ] {
        assert!(text.contains(needle), "Dockerfile lacks {needle}");
    }
    // scripts/check-arm64 builds with the same linker settings.
    let script = read("scripts/check-arm64");
    assert!(script.contains("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compose_exporter_starts_and_its_healthcheck_passes() {
    let compose = yaml("deploy/compose/docker-compose.yml");
    let service = &compose["services"]["exporter"];
    assert_eq!(service["build"]["dockerfile"], "Dockerfile");
    assert_eq!(service["read_only"], true);
    let dockerfile = Dockerfile::parse("Dockerfile");
    let test = strings(&service["healthcheck"]["test"]);
    assert_eq!(test[0], "CMD", "no shell in the image for CMD-SHELL");
    let mut container = image_container();
    container.artefact = "deploy/compose exporter".into();
    container.argv = compose_argv(
        &dockerfile.exec_form("ENTRYPOINT"),
        &dockerfile.exec_form("CMD"),
        service.get("entrypoint").map(strings),
        service.get("command").map(strings),
    );
    container.probes = vec![Probe::Exec(test[1..].to_vec())];
    let run = run_container(&container).await;
    assert_eq!(run.metrics_status, 200);
}
