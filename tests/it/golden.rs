//! The golden `/metrics` file: the per-association families rendered from a fixed store (the
//! version 1 state file that 0.1 wrote during a `--demo` run) must equal, byte for byte, what
//! 0.1 served for that state (but for the info metric's new `region` label), and pass
//! `promtool check metrics`.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use ssm_association_exporter::store::{Live, Store};
use ssm_association_exporter::tracker::Tracker;
use ssm_association_exporter::{exposition, persist};

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/state")
        .join(name)
}

fn render_fixture() -> String {
    let saved = persist::load(&fixture("v1.json")).unwrap().unwrap();
    let store = Store::default();
    for (id, restored) in saved.associations {
        let live = Live {
            tracker: Tracker::restore(restored.tracker, 3_600_000, 60_000),
            exposed: restored.exposed,
        };
        store.insert(&id, live);
    }
    store.publish_all();
    let mut body = Vec::new();
    exposition::render(&store, &mut body).unwrap();
    String::from_utf8(body).unwrap()
}

#[test]
fn metrics_of_a_restored_version_1_state_equal_what_0_1_served() {
    // Since 0.1, ssm_association_info has one more label, `region` (empty until DescribeAssociation
    // is asked again); everything else is byte for byte what 0.1 served.
    let expected = std::fs::read_to_string(fixture("v1.metrics"))
        .unwrap()
        .lines()
        .map(|line| match line.strip_suffix("\"} 1") {
            Some(head) if line.starts_with("ssm_association_info{") => {
                format!("{head}\",region=\"\"}} 1\n")
            }
            _ => format!("{line}\n"),
        })
        .collect::<String>();
    let rendered = render_fixture();
    if rendered != expected {
        for (i, (a, b)) in rendered.lines().zip(expected.lines()).enumerate() {
            assert_eq!(a, b, "first difference at line {}", i + 1);
        }
        assert_eq!(rendered.lines().count(), expected.lines().count());
    }
}

#[test]
fn golden_metrics_pass_promtool() {
    if Command::new("promtool").arg("--version").output().is_err() {
        assert!(
            std::env::var_os("SSM_EXPORTER_REQUIRE_PROMTOOL").is_none(),
            "promtool is required (apt-get install prometheus)"
        );
        return;
    }
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(render_fixture().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
