//! The exporter configuration listing the simulator's associations (the binary's
//! `--config-out`), in the format `ssm-association-exporter` reads.

/// Settings of a generated exporter configuration (values in the exporter's syntax).
#[derive(Clone, Debug)]
pub struct ExporterConfig {
    /// `poll_interval`, e.g. `60s`.
    pub poll_interval: String,
    /// `initial_lookback`, e.g. `1h`.
    pub initial_lookback: String,
    /// `api_requests_per_second`.
    pub api_requests_per_second: f64,
    /// `max_concurrent_requests`.
    pub max_concurrent_requests: u32,
}

/// One entry of an estate configuration's `accounts:`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EstateAccount {
    /// The exporter's own credentials (`{}`).
    Own,
    /// A role to assume, with the `external_id` its trust policy demands, if any.
    Role {
        role_arn: String,
        external_id: Option<String>,
    },
}

impl ExporterConfig {
    /// The YAML text polling `association_ids` in region `us-east-1`.
    pub fn yaml(&self, association_ids: &[String]) -> String {
        let mut yaml = String::from("# Written by ssm-simulator.\nassociations:\n");
        for id in association_ids {
            yaml.push_str(&format!("  - {id}\n"));
        }
        yaml.push_str(&self.common());
        yaml.push_str("region: us-east-1\n");
        yaml
    }

    /// The YAML text watching an estate: every association (`discovery: [{}]`) that
    /// `ListAssociations` lists in every one of `accounts` in every one of `regions`, swept
    /// every `full_sweep_interval`.
    pub fn estate_yaml(
        &self,
        regions: &[String],
        accounts: &[EstateAccount],
        full_sweep_interval: &str,
    ) -> String {
        let mut yaml = String::from("# Written by ssm-simulator.\ndiscovery:\n  - {}\n");
        yaml.push_str(&format!("regions: [{}]\naccounts:\n", regions.join(", ")));
        for account in accounts {
            match account {
                EstateAccount::Own => yaml.push_str("  - {}\n"),
                EstateAccount::Role {
                    role_arn,
                    external_id,
                } => {
                    yaml.push_str(&format!("  - role_arn: {role_arn}\n"));
                    if let Some(external_id) = external_id {
                        yaml.push_str(&format!("    external_id: {external_id}\n"));
                    }
                }
            }
        }
        yaml.push_str(&self.common());
        yaml.push_str(&format!("full_sweep_interval: {full_sweep_interval}\n"));
        yaml
    }

    /// The keys both layouts share.
    fn common(&self) -> String {
        format!(
            "poll_interval: {}\ninitial_lookback: {}\napi_requests_per_second: {}\n\
             max_concurrent_requests: {}\n",
            self.poll_interval,
            self.initial_lookback,
            self.api_requests_per_second,
            self.max_concurrent_requests
        )
    }
}
