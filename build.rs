//! Stamps the git revision into the binary for `ssm_association_exporter_build_info`.
//! `SSM_EXPORTER_REVISION` (e.g. a container build argument) wins; otherwise `git`; else "unknown".
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=SSM_EXPORTER_REVISION");
    // Rebuild when HEAD moves. Ask git where its directory is: in a worktree `.git` is a
    // file, and watching a path that does not exist would rerun this script on every build
    // (and relink the release binary each time).
    let git_dir = Command::new("git")
        .args(["rev-parse", "--git-dir"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string());
    if let Some(dir) = git_dir {
        println!("cargo:rerun-if-changed={dir}/HEAD");
        println!("cargo:rerun-if-changed={dir}/refs/heads");
    }
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
