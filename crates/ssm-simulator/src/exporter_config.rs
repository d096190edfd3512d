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

impl ExporterConfig {
    /// The YAML text polling `association_ids` in region `us-east-1`.
    pub fn yaml(&self, association_ids: &[String]) -> String {
        let mut yaml = String::from("# Written by ssm-simulator.\nassociations:\n");
        for id in association_ids {
            yaml.push_str(&format!("  - {id}\n"));
        }
        yaml.push_str(&format!(
            "poll_interval: {}\ninitial_lookback: {}\napi_requests_per_second: {}\n\
             max_concurrent_requests: {}\nregion: us-east-1\n",
            self.poll_interval,
            self.initial_lookback,
            self.api_requests_per_second,
            self.max_concurrent_requests
        ));
        yaml
    }
}
