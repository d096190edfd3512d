//! Fault injection: which requests fail, and how ([`Fault`], [`FaultRule`], the token bucket).

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use crate::identity::Scope;

/// What a matching [`FaultRule`] does to a request.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// HTTP 400 `ThrottlingException`, "Rate exceeded" (STS: `Throttling`).
    Throttle,
    /// HTTP 500 `InternalServerError` (STS: `InternalFailure`).
    InternalError,
    /// HTTP 400 `InvalidNextToken`.
    InvalidNextToken,
    /// HTTP 400 `AccessDeniedException` (STS: HTTP 403 `AccessDenied`).
    AccessDenied,
    /// HTTP 400 `ExpiredTokenException` (STS: `ExpiredToken`).
    ExpiredToken,
    /// Answer normally after this delay.
    Delay(Duration),
    /// Never answer; the connection stays open until [`Simulator::shutdown`](crate::Simulator::shutdown).
    Hang,
    /// Close the TCP connection without any HTTP response.
    ResetConnection,
    /// `DescribeAssociationExecutions` and `ListAssociations` only, requests carrying a
    /// `NextToken` only: answer the page normally but send back the very `NextToken` the request carried (even on the last
    /// page), so a client that follows it asks for the same page again.
    RepeatNextToken,
    /// `DescribeAssociationExecutions` and `ListAssociations` only, requests carrying a
    /// `NextToken` only: answer the page normally but send back the token that the request's token was itself issued in
    /// answer to, so tokens cycle `A -> B -> A -> B ...` (page 1 gives `A`, `A` gives `B`, `B`
    /// gives `A` again). A request whose token answered the first page (no predecessor) gets its
    /// normal `NextToken`.
    CycleNextTokens,
}

impl Fault {
    /// Faults that change a normal answer's `NextToken` rather than replace the answer.
    pub(crate) fn is_token_fault(&self) -> bool {
        matches!(self, Fault::RepeatNextToken | Fault::CycleNextTokens)
    }
}

/// Injects a [`Fault`] into matching requests.
///
/// Rules are checked in the order they were pushed. Every rule that matches a request counts
/// it; the first rule whose window (`skip` matching requests let through, then `times` failed)
/// covers the request fires, and later rules do not see that request. With a `fraction` below
/// 1, a request in the window fires only with that probability (drawn from a generator seeded
/// with `seed`, so the same sequence of requests gets the same answers), and `times` counts
/// the requests that fired.
#[derive(Clone, Debug)]
pub struct FaultRule {
    /// Operation name such as `DescribeAssociationExecutions`; `None` matches any.
    pub operation: Option<String>,
    /// Association id (for `ListTagsForResource`, its `ResourceId`); `None` matches any.
    pub association_id: Option<String>,
    /// Caller's account (from the access key); `None` matches any.
    pub account: Option<String>,
    /// Region of the request's SigV4 credential scope; `None` matches any. With
    /// [`Fault::ResetConnection`] and [`FaultRule::forever`] this makes a region's endpoint
    /// unreachable.
    pub region: Option<String>,
    /// Match only requests that carry a `NextToken` (page 2 and later). Implied by the token
    /// faults ([`Fault::RepeatNextToken`], [`Fault::CycleNextTokens`]).
    pub only_with_next_token: bool,
    /// Let this many matching requests through first.
    pub skip: u32,
    /// Then fail this many matching requests (`u32::MAX`: forever).
    pub times: u32,
    /// Probability (0 to 1) that a request in the window fires; 1 fires every one.
    pub fraction: f64,
    /// Seed of the generator drawing against `fraction`.
    pub seed: u64,
    /// What to do.
    pub fault: Fault,
}

impl FaultRule {
    /// A rule failing the next request of any operation once.
    pub fn new(fault: Fault) -> Self {
        FaultRule {
            operation: None,
            association_id: None,
            account: None,
            region: None,
            only_with_next_token: false,
            skip: 0,
            times: 1,
            fraction: 1.0,
            seed: 0,
            fault,
        }
    }

    /// Restricts the rule to one operation.
    pub fn operation(mut self, operation: impl Into<String>) -> Self {
        self.operation = Some(operation.into());
        self
    }

    /// Restricts the rule to one association.
    pub fn association(mut self, association_id: impl Into<String>) -> Self {
        self.association_id = Some(association_id.into());
        self
    }

    /// Restricts the rule to callers in one account.
    pub fn account(mut self, account: impl Into<String>) -> Self {
        self.account = Some(account.into());
        self
    }

    /// Restricts the rule to requests signed for one region.
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Restricts the rule to requests carrying a `NextToken`.
    pub fn only_with_next_token(mut self) -> Self {
        self.only_with_next_token = true;
        self
    }

    /// Lets `skip` matching requests through first.
    pub fn skip(mut self, skip: u32) -> Self {
        self.skip = skip;
        self
    }

    /// Fails `times` matching requests (`u32::MAX`: forever).
    pub fn times(mut self, times: u32) -> Self {
        self.times = times;
        self
    }

    /// Fails every matching request from now on.
    pub fn forever(self) -> Self {
        self.times(u32::MAX)
    }

    /// Fires on about `fraction` of the requests in the window, deterministically for a given
    /// `seed` (sustained partial failure: `FaultRule::new(Fault::Throttle).forever()
    /// .fraction(0.5, 7)` throttles half the requests). Panics unless `0 <= fraction <= 1`.
    pub fn fraction(mut self, fraction: f64, seed: u64) -> Self {
        assert!(
            (0.0..=1.0).contains(&fraction),
            "fault fraction must be within 0..=1, got {fraction}"
        );
        self.fraction = fraction;
        self.seed = seed;
        self
    }

    fn matches(
        &self,
        scope: Option<&Scope>,
        operation: &str,
        association_id: Option<&str>,
        has_token: bool,
    ) -> bool {
        let needs_token = self.only_with_next_token || self.fault.is_token_fault();
        let in_scope = |wanted: &Option<String>, got: fn(&Scope) -> &str| {
            wanted
                .as_deref()
                .is_none_or(|w| scope.is_some_and(|s| got(s) == w))
        };
        in_scope(&self.account, |s| &s.account)
            && in_scope(&self.region, |s| &s.region)
            && self.operation.as_deref().is_none_or(|op| op == operation)
            && self
                .association_id
                .as_deref()
                .is_none_or(|id| Some(id) == association_id)
            && (!needs_token || has_token)
            && (!self.fault.is_token_fault()
                || operation == crate::api::OP_DESCRIBE_EXECUTIONS
                || operation == crate::api::OP_LIST_ASSOCIATIONS)
    }
}

/// A pushed rule with its counters.
pub(crate) struct ActiveRule {
    rule: FaultRule,
    matched: u64,
    fired: u64,
    rng: StdRng,
}

impl ActiveRule {
    pub(crate) fn new(rule: FaultRule) -> Self {
        let rng = StdRng::seed_from_u64(rule.seed);
        ActiveRule {
            rule,
            matched: 0,
            fired: 0,
            rng,
        }
    }
}

/// [`pick_fault_in`] for a request without a known scope (rules restricted to an account or
/// region do not match it).
#[cfg(test)]
pub(crate) fn pick_fault(
    rules: &mut [ActiveRule],
    operation: &str,
    association_id: Option<&str>,
    has_token: bool,
) -> Option<Fault> {
    pick_fault_in(rules, None, operation, association_id, has_token)
}

/// The fault for a request from `scope`, if a rule fires (see [`FaultRule`]).
pub(crate) fn pick_fault_in(
    rules: &mut [ActiveRule],
    scope: Option<&Scope>,
    operation: &str,
    association_id: Option<&str>,
    has_token: bool,
) -> Option<Fault> {
    for active in rules.iter_mut() {
        if !active
            .rule
            .matches(scope, operation, association_id, has_token)
        {
            continue;
        }
        active.matched += 1;
        if active.matched <= u64::from(active.rule.skip)
            || active.fired >= u64::from(active.rule.times)
        {
            continue;
        }
        let fires = active.rule.fraction >= 1.0 || active.rng.random_bool(active.rule.fraction);
        if fires {
            active.fired += 1;
            return Some(active.rule.fault.clone());
        }
    }
    None
}

/// A token-bucket rate limit.
pub(crate) struct TokenBucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// Burst `max(1, rate)`, starting full.
    pub(crate) fn new(rate: f64) -> Self {
        let capacity = rate.max(1.0);
        TokenBucket {
            rate,
            capacity,
            tokens: capacity,
            last: Instant::now(),
        }
    }

    /// Takes one token if there is one.
    pub(crate) fn try_take(&mut self) -> bool {
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fired(rules: &mut [ActiveRule], n: usize, has_token: bool) -> Vec<bool> {
        (0..n)
            .map(|_| pick_fault(rules, "X", None, has_token).is_some())
            .collect()
    }

    #[test]
    fn fault_windows() {
        let mut rules = vec![ActiveRule::new(
            FaultRule::new(Fault::Throttle).skip(1).times(2),
        )];
        assert_eq!(
            fired(&mut rules, 5, false),
            [false, true, true, false, false]
        );
    }

    #[test]
    fn fractions_are_seeded_and_roughly_right() {
        let rule = FaultRule::new(Fault::Throttle).forever().fraction(0.5, 7);
        let first = fired(&mut [ActiveRule::new(rule.clone())], 1000, false);
        let again = fired(&mut [ActiveRule::new(rule)], 1000, false);
        assert_eq!(first, again, "the same seed gives the same answers");
        let count = first.iter().filter(|f| **f).count();
        assert!((400..=600).contains(&count), "{count} of 1000");
        let never = FaultRule::new(Fault::Throttle).forever().fraction(0.0, 1);
        assert!(!fired(&mut [ActiveRule::new(never)], 100, false).contains(&true));
        // `times` counts the requests that fired.
        let capped = FaultRule::new(Fault::Throttle).times(3).fraction(0.5, 9);
        let capped = fired(&mut [ActiveRule::new(capped)], 100, false);
        assert_eq!(capped.iter().filter(|f| **f).count(), 3);
    }

    #[test]
    fn token_faults_need_a_token_and_the_executions_operation() {
        let mut rules = vec![ActiveRule::new(
            FaultRule::new(Fault::RepeatNextToken).forever(),
        )];
        assert!(pick_fault(&mut rules, "DescribeAssociationExecutions", None, false).is_none());
        assert!(pick_fault(&mut rules, "DescribeAssociation", None, true).is_none());
        assert_eq!(
            pick_fault(&mut rules, "DescribeAssociationExecutions", None, true),
            Some(Fault::RepeatNextToken)
        );
    }
}
