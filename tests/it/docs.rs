//! The documentation's links: every relative link and anchor in the README, `docs/`, `bench/`
//! and `deploy/` Markdown resolves, so moving a section or renaming a heading cannot leave a
//! reader at a dead end.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use crate::common::repo_path;

/// The Markdown files a reader follows links through.
fn markdown_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "md") {
                out.push(path);
            }
        }
    }
    let mut files = vec![repo_path("README.md"), repo_path("CHANGELOG.md")];
    for dir in ["docs", "bench", "deploy", "crates/ssm-simulator"] {
        walk(&repo_path(dir), &mut files);
    }
    files.retain(|f| !f.components().any(|c| c.as_os_str() == "target"));
    files.sort();
    files
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens.
pub fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_' || *c == ' ')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a Markdown text's headings (outside code fences), with GitHub's `-1`, `-2`
/// suffixes for repeats, plus explicit `<a id="...">` / `<a name="...">` anchors.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = BTreeSet::new();
    let mut fence = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fence = !fence;
            continue;
        }
        if fence {
            continue;
        }
        let hashes = line.chars().take_while(|c| *c == '#').count();
        if (1..=6).contains(&hashes) && line[hashes..].starts_with(' ') {
            let base = slug(&line[hashes..]);
            let n = seen.entry(base.clone()).or_insert(0);
            out.insert(if *n == 0 {
                base.clone()
            } else {
                format!("{base}-{n}")
            });
            *n += 1;
        }
        for marker in ["<a id=\"", "<a name=\""] {
            for part in line.split(marker).skip(1) {
                if let Some(id) = part.split('"').next() {
                    out.insert(id.to_string());
                }
            }
        }
    }
    out
}

/// `(target, line)` of every inline Markdown link `](target)` outside code fences and code spans.
fn links(text: &str) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    let mut fence = false;
    for (n, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fence = !fence;
            continue;
        }
        if fence {
            continue;
        }
        // Drop code spans, where `](` is text, not a link.
        let plain: String = line
            .split('`')
            .enumerate()
            .filter(|(i, _)| i % 2 == 0)
            .map(|(_, s)| s)
            .collect::<Vec<_>>()
            .join(" ");
        for part in plain.split("](").skip(1) {
            if let Some(end) = part.find(')') {
                let target = part[..end].split_whitespace().next().unwrap_or("");
                out.push((target.to_string(), n + 1));
            }
        }
    }
    out
}

#[test]
fn every_relative_link_and_anchor_in_the_docs_resolves() {
    let files = markdown_files();
    assert!(
        files.iter().any(|f| f.ends_with("docs/configuration.md")),
        "the topic pages are found: {files:?}"
    );
    let mut broken = Vec::new();
    let mut checked = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let shown = file.strip_prefix(repo_path("")).unwrap_or(file).display();
        for (target, line) in links(&text) {
            if target.is_empty()
                || target.contains("://")
                || target.starts_with("mailto:")
                || target.starts_with('<')
            {
                continue;
            }
            checked += 1;
            let (path, anchor) = match target.split_once('#') {
                Some((p, a)) => (p, Some(a)),
                None => (target.as_str(), None),
            };
            let dest = if path.is_empty() {
                file.clone()
            } else {
                file.parent().unwrap().join(path)
            };
            if !dest.exists() {
                broken.push(format!("{shown}:{line}: {target}: no such file"));
                continue;
            }
            if let Some(anchor) = anchor {
                let is_markdown = dest.extension().is_some_and(|e| e == "md");
                if is_markdown {
                    let text = std::fs::read_to_string(&dest).unwrap();
                    if !anchors(&text).contains(anchor) {
                        broken.push(format!("{shown}:{line}: {target}: no such heading"));
                    }
                }
            }
        }
    }
    assert!(
        checked > 50,
        "only {checked} links found: the parser is broken"
    );
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_link_checker_sees_headings_links_and_code() {
    let text = "# Title\n## How polling works\n## How polling works\n```\n# not a heading\n[x](#no)\n```\nsee [a](#title) and `[b](#code)`\n";
    assert_eq!(
        anchors(text),
        ["how-polling-works", "how-polling-works-1", "title"]
            .into_iter()
            .map(String::from)
            .collect()
    );
    assert_eq!(links(text), vec![("#title".to_string(), 8)]);
    assert_eq!(
        slug("Events (EventBridge → SQS)"),
        "events-eventbridge--sqs"
    );
}
