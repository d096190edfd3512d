//! What to watch: static association IDs and `discovery:` selectors matched against a listing.
//! Pure, apart from the tags, which the caller reads (and caches) only when a selector needs them.

use std::collections::HashSet;

use crate::config::{Config, Selector};
use crate::model::ListedAssociation;

/// The static IDs and selectors of one configuration.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    static_ids: HashSet<String>,
    selectors: Vec<Selector>,
}

/// What the names say about one listed association.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Its ID is in `associations:`.
    pub static_id: bool,
    /// Selectors matched on names alone (they have no tags).
    pub matched: Vec<usize>,
    /// Selectors whose names match and that also need tags.
    pub need_tags: Vec<usize>,
}

impl Verdict {
    /// Whether the association is selected without looking at tags.
    pub fn selected(&self) -> bool {
        self.static_id || !self.matched.is_empty()
    }
}

impl Selection {
    pub fn new(config: &Config) -> Selection {
        Selection::from_parts(
            config.associations.iter().map(|a| a.id.clone()),
            config.discovery.clone(),
        )
    }

    pub fn from_parts(
        static_ids: impl IntoIterator<Item = String>,
        selectors: Vec<Selector>,
    ) -> Selection {
        Selection {
            static_ids: static_ids.into_iter().collect(),
            selectors,
        }
    }

    pub fn static_ids(&self) -> &HashSet<String> {
        &self.static_ids
    }

    pub fn selectors(&self) -> &[Selector] {
        &self.selectors
    }

    /// Matches `listed` by ID and names.
    pub fn by_names(&self, listed: &ListedAssociation) -> Verdict {
        let mut verdict = Verdict {
            static_id: self.static_ids.contains(&listed.id),
            matched: Vec::new(),
            need_tags: Vec::new(),
        };
        for (i, selector) in self.selectors.iter().enumerate() {
            if !selector.matches_names(listed.name.as_deref(), &listed.document_name) {
                continue;
            }
            if selector.tags.is_empty() {
                verdict.matched.push(i);
            } else {
                verdict.need_tags.push(i);
            }
        }
        verdict
    }

    /// Completes `verdict` with the association's `tags`: the tag selectors that match too.
    pub fn with_tags(&self, verdict: &mut Verdict, tags: &[(String, String)]) {
        let need = std::mem::take(&mut verdict.need_tags);
        verdict.matched.extend(
            need.into_iter()
                .filter(|i| self.selectors[*i].matches_tags(tags)),
        );
        verdict.matched.sort_unstable();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Pattern;

    fn listed(id: &str, name: Option<&str>, document: &str) -> ListedAssociation {
        ListedAssociation {
            id: id.into(),
            name: name.map(str::to_string),
            document_name: document.into(),
            document_version: None,
            association_version: None,
            schedule_expression: None,
            targets: String::new(),
            last_execution_ms: None,
            overview: String::new(),
        }
    }

    fn selection(static_ids: &[&str], selectors: Vec<Selector>) -> Selection {
        Selection::from_parts(static_ids.iter().map(|id| id.to_string()), selectors)
    }

    #[test]
    fn names_are_matched_whole_and_an_empty_selector_takes_everything() {
        let prod = Selector {
            association_name: Some(Pattern::new("prod-.*").unwrap()),
            document_name: Some(Pattern::new("AWS-RunPatchBaseline").unwrap()),
            ..Selector::default()
        };
        let s = selection(&[], vec![prod]);
        assert!(s
            .by_names(&listed("a", Some("prod-web"), "AWS-RunPatchBaseline"))
            .selected());
        assert!(!s
            .by_names(&listed("a", Some("preprod-web"), "AWS-RunPatchBaseline"))
            .selected());
        assert!(!s
            .by_names(&listed("a", Some("prod-web"), "AWS-RunPatchBaselineX"))
            .selected());
        assert!(!s
            .by_names(&listed("a", None, "AWS-RunPatchBaseline"))
            .selected());
        let all = selection(&[], vec![Selector::default()]);
        assert!(all.by_names(&listed("a", None, "x")).selected());
    }

    #[test]
    fn static_ids_select_whatever_their_names() {
        let s = selection(&["a"], Vec::new());
        assert!(s.by_names(&listed("a", None, "x")).selected());
        assert!(!s.by_names(&listed("b", None, "x")).selected());
    }

    #[test]
    fn tags_are_asked_for_only_when_the_names_match() {
        let team = Selector {
            document_name: Some(Pattern::new("AWS-.*").unwrap()),
            tags: [("team".to_string(), "platform".to_string())].into(),
            ..Selector::default()
        };
        let s = selection(&[], vec![team]);
        let other = s.by_names(&listed("a", None, "Custom"));
        assert!(other.need_tags.is_empty() && !other.selected());
        let mut v = s.by_names(&listed("a", None, "AWS-X"));
        assert_eq!(v.need_tags, [0]);
        s.with_tags(&mut v, &[("team".into(), "data".into())]);
        assert!(!v.selected());
        let mut v = s.by_names(&listed("a", None, "AWS-X"));
        s.with_tags(
            &mut v,
            &[
                ("env".into(), "prod".into()),
                ("team".into(), "platform".into()),
            ],
        );
        assert!(v.selected());
    }
}
