//! What one scope lists each interval: every association (a *full* listing) at start and every
//! `full_listing_interval`, and in between only those whose `LastExecutionDate` moved since the
//! last listing (a *delta* listing: `ListAssociations` with `LastExecutedAfter`).
//!
//! AWS documents neither the filter value's format nor whether "after" is strict, and its
//! listing is eventually consistent, so a delta listing is a hint, never the truth: it asks
//! from AWS's time at the start of the previous listing minus a margin
//! ([`delta_margin`]), keeps locally only what is after that too, and decides nothing about
//! what it does not show. Membership (new, removed, re-selected associations), versions and
//! names come from the full listing; a delta listing that shows an association the last full
//! listing did not have (a new one that ran) is followed by a full listing at once. What a
//! listing shows of an association is kept in its entry ([`update_info`]).

use std::collections::HashSet;
use std::time::Duration;

use tokio::time::Instant;

use super::Shared;
use crate::model::{ListedAssociation, ScopeKey};
use crate::schedule;
use crate::ssm::{ApiError, ErrorKind, Ssm};
use crate::store::Entry;
use crate::sync::lock;

/// Pages of one listing at most (50 associations each: 500,000 associations).
const MAX_LISTING_PAGES: usize = 10_000;

/// The least margin of a delta listing: the AWS clock as the `Date` header shows it is
/// ±1.5 s, and the filter's comparison (strict or not, milliseconds or seconds) is unknown.
pub const MIN_DELTA_MARGIN: Duration = Duration::from_secs(60);

/// How far before the previous listing's start a delta listing asks: `late_visibility_window`
/// (the setting that says how late AWS shows what already happened; a run's record in the
/// listing is the same eventually consistent data), at least [`MIN_DELTA_MARGIN`]. A run whose
/// record the listing shows later than this after its `LastExecutionDate` is found by the next
/// full listing instead.
pub fn delta_margin(late_window: Duration) -> Duration {
    late_window.max(MIN_DELTA_MARGIN)
}

/// Which kind a listing was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Every association of the scope: the truth for membership.
    Full,
    /// Only those whose `LastExecutionDate` moved: updates what it shows, nothing else.
    Delta,
}

/// One complete listing, and when it started.
pub struct Listing {
    pub kind: Kind,
    pub associations: Vec<ListedAssociation>,
    started: Instant,
    /// AWS's clock when it started: where the next delta listing asks from (minus the margin).
    started_aws_ms: i64,
}

/// When one scope lists in full, and from when its delta listings ask.
pub struct Listings {
    interval: Duration,
    full_every: Duration,
    margin_ms: i64,
    /// The start of the last full listing applied.
    last_full: Option<Instant>,
    /// AWS's clock at the start of the last listing applied, full or delta.
    since_aws_ms: Option<i64>,
    /// Every association the last full listing had, selected or not.
    listed: HashSet<String>,
    warned_unfiltered: bool,
}

impl Listings {
    pub fn new(interval: Duration, full_every: Duration, margin: Duration) -> Listings {
        Listings {
            interval,
            full_every,
            margin_ms: i64::try_from(margin.as_millis()).unwrap_or(i64::MAX),
            last_full: None,
            since_aws_ms: None,
            listed: HashSet::new(),
            warned_unfiltered: false,
        }
    }

    /// The `LastExecutedAfter` of a listing starting at `now`, or `None` when it is full: at
    /// start, and at the first listing that starts at least `full_listing_interval` after the
    /// last full one (within half an interval, so that the phase's jitter never postpones it
    /// by a whole interval).
    fn delta_after(&self, now: Instant) -> Option<i64> {
        let since = self.since_aws_ms?;
        let full_due = self.last_full? + self.full_every;
        if now + self.interval / 2 >= full_due {
            return None;
        }
        Some(since.saturating_sub(self.margin_ms))
    }

    /// Lists the scope: a delta listing when one is due, else (or when it shows an association
    /// the last full listing did not have) a full one. Only a complete listing is returned.
    pub async fn list(&mut self, ssm: &Ssm) -> Result<Listing, ApiError> {
        let (started, started_aws_ms) = (Instant::now(), ssm.clock().now_ms());
        if let Some(after) = self.delta_after(started) {
            let mut associations = list_all(ssm, Some(after)).await?;
            // Filtered here too: an association dated before `after` (or never run) means the
            // filter was ignored; the listing is still right, only as costly as a full one.
            let returned = associations.len();
            associations.retain(|l| l.last_execution_ms.is_some_and(|t| t >= after));
            if associations.len() < returned
                && !std::mem::replace(&mut self.warned_unfiltered, true)
            {
                tracing::warn!(
                    returned,
                    after = %crate::ssm::format_filter_time(after),
                    "ListAssociations returned associations that did not run after its LastExecutedAfter filter; they are left out here, and each delta listing costs as much as a full one"
                );
            }
            if associations.iter().all(|l| self.listed.contains(&l.id)) {
                return Ok(Listing {
                    kind: Kind::Delta,
                    associations,
                    started,
                    started_aws_ms,
                });
            }
            tracing::debug!("a delta listing shows an association the last full listing did not have; listing in full");
        }
        let (started, started_aws_ms) = (Instant::now(), ssm.clock().now_ms());
        Ok(Listing {
            kind: Kind::Full,
            associations: list_all(ssm, None).await?,
            started,
            started_aws_ms,
        })
    }

    /// Records that `listing` was applied: the next delta listing asks from its start.
    pub fn applied(&mut self, listing: &Listing) {
        self.since_aws_ms = Some(listing.started_aws_ms);
        if listing.kind == Kind::Full {
            self.last_full = Some(listing.started);
            self.listed = listing.associations.iter().map(|l| l.id.clone()).collect();
        }
    }
}

/// Every association of the scope (or, with `executed_after_ms`, every one that ran after it),
/// page by page. Only a complete listing is returned: a partial one could not tell a removed
/// association from one on a page not read.
async fn list_all(
    ssm: &Ssm,
    executed_after_ms: Option<i64>,
) -> Result<Vec<ListedAssociation>, ApiError> {
    let mut all = Vec::new();
    let mut token = None;
    let mut tokens = HashSet::new();
    for _ in 0..MAX_LISTING_PAGES {
        let page = ssm
            .association_page(token.take(), executed_after_ms)
            .await?;
        if page.malformed > 0 {
            tracing::warn!(
                skipped = page.malformed,
                "associations without AssociationId or Name skipped"
            );
        }
        all.extend(page.associations);
        match page.next_token {
            None => return Ok(all),
            Some(next) if !tokens.insert(next.clone()) => {
                return Err(ApiError {
                    kind: ErrorKind::Transient,
                    code: crate::poller::REPEATED_TOKEN.to_string(),
                    message: "ListAssociations sent a NextToken it had already sent; the listing is read again at the next interval".to_string(),
                });
            }
            Some(next) => token = Some(next),
        }
    }
    Err(ApiError {
        kind: ErrorKind::Transient,
        code: crate::poller::PAGE_LIMIT.to_string(),
        message: format!("ListAssociations had more than {MAX_LISTING_PAGES} pages"),
    })
}

/// Keeps the association's info (schedule gap, `LastExecutionDate`) as the listing shows it.
pub(super) fn update_info(
    entry: &Entry,
    listed: &ListedAssociation,
    key: &ScopeKey,
    aws_now_ms: i64,
    shared: &Shared,
    publish: bool,
) {
    let info = listed.info(key);
    let mut live = lock(&entry.live);
    if live.exposed.info.as_ref() == Some(&info)
        && live.exposed.schedule_interval_seconds.is_some()
        && live.exposed.listed_last_execution_ms == listed.last_execution_ms
    {
        return;
    }
    live.exposed.listed_last_execution_ms = listed.last_execution_ms;
    live.exposed.schedule_interval_seconds =
        schedule::expected_interval(&info.schedule_expression, aws_now_ms).map(|d| d.as_secs_f64());
    live.exposed.info = Some(info);
    drop(live);
    shared.store.mark_dirty();
    if publish && shared.publish_each_poll {
        entry.publish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);
    const MINUTE: Duration = Duration::from_secs(60);

    fn listing(kind: Kind, ids: &[&str], started: Instant, started_aws_ms: i64) -> Listing {
        Listing {
            kind,
            associations: ids
                .iter()
                .map(|id| ListedAssociation {
                    id: (*id).to_string(),
                    name: None,
                    document_name: "AWS-RunPatchBaseline".to_string(),
                    document_version: None,
                    association_version: Some("1".to_string()),
                    schedule_expression: None,
                    targets: String::new(),
                    last_execution_ms: None,
                    overview: String::new(),
                })
                .collect(),
            started,
            started_aws_ms,
        }
    }

    /// Full at start and every `full_listing_interval` (the jitter of a listing's start within
    /// half an interval never postpones it); delta listings in between ask from the previous
    /// listing's AWS time minus the margin.
    #[tokio::test(start_paused = true)]
    async fn full_at_start_and_every_full_listing_interval_deltas_between() {
        let t0 = Instant::now();
        let mut listings = Listings::new(MINUTE, 10 * MINUTE, 2 * MINUTE);
        assert_eq!(listings.delta_after(t0), None, "the first listing is full");
        listings.applied(&listing(Kind::Full, &["a"], t0, 1_000_000_000));
        assert_eq!(
            listings.delta_after(t0 + MINUTE),
            Some(1_000_000_000 - 120_000)
        );
        listings.applied(&listing(Kind::Delta, &[], t0 + MINUTE, 1_000_060_000));
        assert_eq!(
            listings.delta_after(t0 + 2 * MINUTE),
            Some(1_000_060_000 - 120_000),
            "from the last listing, full or delta"
        );
        assert_eq!(
            listings.delta_after(t0 + 9 * MINUTE),
            Some(1_000_060_000 - 120_000)
        );
        // The tenth interval's listing starts a little early: still full.
        assert_eq!(listings.delta_after(t0 + 10 * MINUTE - SECOND), None);
        assert_eq!(listings.delta_after(t0 + 10 * MINUTE), None);
        // Without a full listing applied since, the next one stays full.
        assert_eq!(listings.delta_after(t0 + 11 * MINUTE), None);
        listings.applied(&listing(
            Kind::Full,
            &["a"],
            t0 + 11 * MINUTE,
            1_000_660_000,
        ));
        assert!(listings.delta_after(t0 + 12 * MINUTE).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn a_zero_full_listing_interval_lists_everything_every_time() {
        let t0 = Instant::now();
        let mut listings = Listings::new(MINUTE, Duration::ZERO, MINUTE);
        listings.applied(&listing(Kind::Full, &["a"], t0, 1_000_000_000));
        assert_eq!(listings.delta_after(t0 + MINUTE), None);
    }

    #[test]
    fn the_margin_is_the_late_visibility_window_at_least_a_minute() {
        assert_eq!(delta_margin(10 * MINUTE), 10 * MINUTE);
        assert_eq!(delta_margin(Duration::ZERO), MINUTE);
    }
}
