//! The estate API of [`Simulator`]: associations per account and region and their lifecycle
//! (create, update, replace, delete), tags, accounts, roles, and ground truth per scope.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::identity::{role_arn_account, Role, Scope};
use crate::model::{
    stable_hash, uuid_like, AssociationDetails, AssociationState, GroundTruth, LastExecutedFilter,
    LastExecutionDateMode, SimAssociation, SimExecution,
};
use crate::simulator::Simulator;
use crate::state::State;

fn check_alarms(id: &str, association: &SimAssociation) {
    assert!(
        association.alarms.len() <= 1,
        "association {id}: the SSM model allows at most one configured alarm"
    );
}

fn check_details(id: &str, details: &AssociationDetails) {
    assert!(
        details.targets.len() <= 5,
        "association {id}: the SSM model allows at most 5 targets"
    );
}

impl State {
    fn store_mut(&mut self, scope: Scope) -> &mut BTreeMap<String, AssociationState> {
        self.scopes.entry(scope).or_default()
    }

    fn expect_association(&mut self, scope: &Scope, id: &str, what: &str) -> &mut AssociationState {
        self.association_mut(scope, id)
            .unwrap_or_else(|| panic!("{what}: unknown association {id} in {scope}"))
    }
}

impl Simulator {
    /// Callers signing with `access_key` belong to `account_id` (unknown static keys belong to
    /// [`DEFAULT_ACCOUNT`](crate::DEFAULT_ACCOUNT)).
    pub fn add_access_key(&self, access_key: &str, account_id: &str) {
        self.shared()
            .lock()
            .identity
            .add_key(access_key.to_owned(), account_id.to_owned());
    }

    /// Creates (or replaces) a role that `AssumeRole` can assume: it belongs to `account_id`,
    /// demands `external_id` when `Some`, and trusts callers from `trusted_accounts` only.
    /// Panics unless `role_arn` is `arn:<partition>:iam::<account_id>:role/<name>`.
    pub fn add_role(
        &self,
        role_arn: impl Into<String>,
        account_id: impl Into<String>,
        external_id: Option<String>,
        trusted_accounts: impl IntoIterator<Item = impl Into<String>>,
    ) {
        let (role_arn, account) = (role_arn.into(), account_id.into());
        match role_arn_account(&role_arn) {
            Some((arn_account, _)) if arn_account == account => {}
            _ => panic!("add_role: {role_arn} is not a role ARN of account {account}"),
        }
        let role = Role {
            account,
            external_id,
            trusted_accounts: trusted_accounts.into_iter().map(Into::into).collect(),
        };
        self.shared().lock().identity.roles.insert(role_arn, role);
    }

    /// Deletes a role; later `AssumeRole` calls for it get `AccessDenied`. Credentials already
    /// issued keep working until they expire.
    pub fn remove_role(&self, role_arn: &str) {
        self.shared().lock().identity.roles.remove(role_arn);
    }

    /// Overrides how long credentials issued by `AssumeRole` live (the `Expiration` sent
    /// follows it, in whole seconds); `None` honours the request's `DurationSeconds` (default
    /// 3600). Expiry is judged on the simulator's clock ([`Simulator::set_clock_offset_ms`]).
    pub fn set_assumed_role_lifetime(&self, lifetime: Option<Duration>) {
        let ms = lifetime.map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        self.shared().lock().identity.lifetime_ms = ms;
    }

    /// Whether an association's `LastExecutionDate` (`ListAssociations`,
    /// `DescribeAssociation`, the `LastExecuted*` filters) moves when a run starts or when it
    /// ends ([`LastExecutionDateMode::End`] by default).
    pub fn set_last_execution_date_mode(&self, mode: LastExecutionDateMode) {
        self.shared().lock().last_execution_date_mode = mode;
    }

    /// How `ListAssociations`' `LastExecutedAfter` and `LastExecutedBefore` filters compare
    /// with `LastExecutionDate` ([`LastExecutedFilter::Strict`] by default): AWS does not say,
    /// so a client can be tested under each.
    pub fn set_last_executed_filter(&self, filter: LastExecutedFilter) {
        self.shared().lock().last_executed_filter = filter;
    }

    /// Adds an association to `account` in `region` (version 1, default
    /// [`AssociationDetails`]), or replaces the metadata of an existing one there (keeping its
    /// executions, version, details and tags). Panics if it has more than one alarm.
    pub fn add_association_in(
        &self,
        account: &str,
        region: &str,
        id: &str,
        association: SimAssociation,
    ) {
        check_alarms(id, &association);
        let added_ms = self.now_ms();
        let mut state = self.shared().lock();
        let store = state.store_mut(Scope::new(account, region));
        match store.get_mut(id) {
            Some(existing) => existing.meta = association,
            None => {
                let details = AssociationDetails::default();
                store.insert(
                    id.to_owned(),
                    AssociationState::new(association, details, added_ms),
                );
            }
        }
    }

    /// Adds `n` associations to `account` in `region` under one lock, for benchmarks and large
    /// estates: named `<prefix>-<i>` for `i` in `0..n`, running `AWS-RunPatchBaseline` on
    /// `rate(30 minutes)` with default [`AssociationDetails`], no executions. Returns their ids
    /// in `i` order, which is also their listing order: uuid-shaped, derived from `prefix` and
    /// `i` (the same prefix gives the same ids, so calling it again with a prefix already used
    /// in that scope replaces those associations' metadata as
    /// [`Simulator::add_association_in`] does, keeping their executions).
    pub fn add_associations_in(
        &self,
        account: &str,
        region: &str,
        n: usize,
        prefix: &str,
    ) -> Vec<String> {
        let high = stable_hash(prefix) << 64;
        let added_ms = self.now_ms();
        let mut state = self.shared().lock();
        let store = state.store_mut(Scope::new(account, region));
        (0..n)
            .map(|i| {
                let id = uuid_like(high | i as u128);
                let meta = SimAssociation::new("AWS-RunPatchBaseline")
                    .with_name(format!("{prefix}-{i}"))
                    .with_schedule("rate(30 minutes)");
                match store.get_mut(&id) {
                    Some(existing) => existing.meta = meta,
                    None => {
                        let details = AssociationDetails::default();
                        store.insert(id.clone(), AssociationState::new(meta, details, added_ms));
                    }
                }
                id
            })
            .collect()
    }

    /// Creates an association (version 1) with its `ListAssociations` details, replacing any
    /// association with that id in `account` and `region`. Panics if it breaks the service
    /// model's limits (one alarm, five targets).
    pub fn add_association_with_details_in(
        &self,
        account: &str,
        region: &str,
        id: &str,
        association: SimAssociation,
        details: AssociationDetails,
    ) {
        check_alarms(id, &association);
        check_details(id, &details);
        let added_ms = self.now_ms();
        let mut state = self.shared().lock();
        state.store_mut(Scope::new(account, region)).insert(
            id.to_owned(),
            AssociationState::new(association, details, added_ms),
        );
    }

    /// Updates an association (an `UpdateAssociation`): `f` edits its metadata and details,
    /// and its `AssociationVersion` goes up by one. Executions added later carry the new
    /// version. Returns the new version. Panics if the association is unknown or the result
    /// breaks the service model's limits (then nothing changes).
    pub fn update_association_in(
        &self,
        account: &str,
        region: &str,
        id: &str,
        f: impl FnOnce(&mut SimAssociation, &mut AssociationDetails),
    ) -> u32 {
        let scope = Scope::new(account, region);
        let mut state = self.shared().lock();
        let association = state.expect_association(&scope, id, "update_association_in");
        let (mut meta, mut details) = (association.meta.clone(), association.details.clone());
        f(&mut meta, &mut details);
        drop(state);
        check_alarms(id, &meta);
        check_details(id, &details);
        let mut state = self.shared().lock();
        let association = state.expect_association(&scope, id, "update_association_in");
        association.meta = meta;
        association.details = details;
        association.version += 1;
        association.version
    }

    /// Replaces an association as Terraform or CloudFormation do: `old_id` is deleted with
    /// its executions and `new_id` created (version 1, no executions) with `association`,
    /// keeping the old `AssociationName` when `association.name` is `None`, and the old
    /// details and tags. Panics if `old_id` is unknown.
    pub fn replace_association_in(
        &self,
        account: &str,
        region: &str,
        old_id: &str,
        new_id: &str,
        mut association: SimAssociation,
    ) {
        check_alarms(new_id, &association);
        let added_ms = self.now_ms();
        let scope = Scope::new(account, region);
        let mut state = self.shared().lock();
        let old = state
            .scopes
            .get_mut(&scope)
            .and_then(|store| store.remove(old_id))
            .unwrap_or_else(|| {
                panic!("replace_association_in: unknown association {old_id} in {scope}")
            });
        if association.name.is_none() {
            association.name = old.meta.name.clone();
        }
        let mut new = AssociationState::new(association, old.details.clone(), added_ms);
        new.tags = old.tags;
        state.store_mut(scope).insert(new_id.to_owned(), new);
    }

    /// Deletes an association of `account` in `region` and its executions; later calls get
    /// `AssociationDoesNotExist` and listings leave it out.
    pub fn remove_association_in(&self, account: &str, region: &str, id: &str) {
        let scope = Scope::new(account, region);
        if let Some(store) = self.shared().lock().scopes.get_mut(&scope) {
            store.remove(id);
        }
    }

    /// The ids of the associations of `account` in `region`, in listing order.
    pub fn association_ids_in(&self, account: &str, region: &str) -> Vec<String> {
        let scope = Scope::new(account, region);
        let state = self.shared().lock();
        state
            .scopes
            .get(&scope)
            .map(|store| store.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The current `AssociationVersion` of an association, if it exists.
    pub fn association_version_in(&self, account: &str, region: &str, id: &str) -> Option<u32> {
        let scope = Scope::new(account, region);
        self.shared()
            .lock()
            .association(&scope, id)
            .map(|a| a.version)
    }

    /// Sets an association's tags (`ListTagsForResource`), replacing all earlier ones; the
    /// version does not change (tagging is not an update). Panics if the association is
    /// unknown.
    pub fn set_tags_in(
        &self,
        account: &str,
        region: &str,
        id: &str,
        tags: impl IntoIterator<Item = (impl Into<String>, impl Into<String>)>,
    ) {
        let tags = tags
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        let scope = Scope::new(account, region);
        let mut state = self.shared().lock();
        state.expect_association(&scope, id, "set_tags_in").tags = tags;
    }

    /// Adds an execution (replacing one with the same id) to an association of `account` in
    /// `region`; it carries the association's current version. Sends the State Manager events
    /// of the change to the queues routed from the scope. Panics if the association is
    /// unknown or the execution breaks the service model's alarm limits.
    pub fn add_execution_in(
        &self,
        account: &str,
        region: &str,
        association_id: &str,
        execution: SimExecution,
    ) {
        if let Some(violation) = execution.model_violation() {
            panic!("{violation}");
        }
        let scope = Scope::new(account, region);
        let now_ms = self.now_ms();
        let mut state = self.shared().lock();
        let association = state
            .association_mut(&scope, association_id)
            .unwrap_or_else(|| panic!("add_execution: unknown association {association_id}"));
        let execution_id = execution.execution_id.clone();
        let before = association.take(&execution_id);
        association.insert(execution);
        state.execution_changed(
            &scope,
            association_id,
            &execution_id,
            before.as_ref(),
            now_ms,
        );
    }

    /// Changes an execution of an association of `account` in `region` in place, sending the
    /// State Manager events of the change (if its status or a target's changed). Panics if
    /// the association or execution is unknown or the result breaks the service model's
    /// alarm limits (then nothing changes).
    pub fn update_execution_in(
        &self,
        account: &str,
        region: &str,
        association_id: &str,
        execution_id: &str,
        f: impl FnOnce(&mut SimExecution),
    ) {
        let scope = Scope::new(account, region);
        let mut state = self.shared().lock();
        let association = state
            .association_mut(&scope, association_id)
            .unwrap_or_else(|| panic!("update_execution: unknown association {association_id}"));
        let mut execution = association.take(execution_id).unwrap_or_else(|| {
            panic!("update_execution: unknown execution {execution_id} of {association_id}")
        });
        let original = execution.clone();
        f(&mut execution);
        match execution.model_violation() {
            None => {
                association.insert(execution);
                let now_ms = self.now_ms();
                state.execution_changed(
                    &scope,
                    association_id,
                    execution_id,
                    Some(&original),
                    now_ms,
                );
            }
            Some(violation) => {
                association.insert(original);
                drop(state);
                panic!("{violation}");
            }
        }
    }

    /// All executions of an association of `account` in `region` (visible or not), newest
    /// `CreatedTime` first.
    pub fn executions_in(
        &self,
        account: &str,
        region: &str,
        association_id: &str,
    ) -> Vec<SimExecution> {
        let scope = Scope::new(account, region);
        self.shared()
            .lock()
            .association(&scope, association_id)
            .map(|a| a.executions.values().cloned().collect())
            .unwrap_or_default()
    }

    /// What an exporter should have counted from the visible executions of `account` in
    /// `region`.
    pub fn ground_truth_in(&self, account: &str, region: &str) -> GroundTruth {
        let scope = Scope::new(account, region);
        let state = self.shared().lock();
        let mut truth = GroundTruth::default();
        for (id, association) in state.scopes.get(&scope).into_iter().flatten() {
            truth.add(id, association);
        }
        truth
    }

    /// [`Simulator::ground_truth_in`] for every account and region that holds associations.
    pub fn estate_ground_truth(&self) -> BTreeMap<Scope, GroundTruth> {
        let state = self.shared().lock();
        state
            .scopes
            .iter()
            .filter(|(_, store)| !store.is_empty())
            .map(|(scope, store)| {
                let mut truth = GroundTruth::default();
                for (id, association) in store {
                    truth.add(id, association);
                }
                (scope.clone(), truth)
            })
            .collect()
    }
}
