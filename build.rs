//! Stamps the git revision into the binary for `ssm_association_exporter_build_info`.
//! `SSM_EXPORTER_REVISION` (e.g. a container build argument) wins; otherwise `git`; else "unknown".
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=SSM_EXPORTER_REVISION");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
    let revision = std::env::var("SSM_EXPORTER_REVISION")
        .ok()
        .filter(|r| !r.is_empty())
        .or_else(|| {
            Command::new("git")
                .args(["rev-parse", "--short=12", "HEAD"])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .and_then(|o| String::from_utf8(o.stdout).ok())
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=SSM_EXPORTER_REVISION={revision}");
}
