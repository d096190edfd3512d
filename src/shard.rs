//! Sharding, kube-state-metrics style: with `--total-shards=M`, shard `N` watches only the
//! associations that a stable hash of `account_id/region/association_id` assigns to it (jump
//! consistent hash: when M changes, as few associations as possible move). Every shard lists
//! (discovery and the change feed are cheap); only the owner polls, keeps state and exports.

use crate::model::ScopeKey;

/// This process's shard: `index` of `total` (0 of 1: no sharding).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub total: u32,
}

impl Default for Shard {
    fn default() -> Self {
        Shard { index: 0, total: 1 }
    }
}

impl Shard {
    /// A shard, or why the pair is invalid.
    pub fn new(index: u32, total: u32) -> Result<Shard, String> {
        if total == 0 {
            return Err("--total-shards must be at least 1".to_string());
        }
        if index >= total {
            return Err(format!(
                "--shard must be below --total-shards ({total}), got {index}"
            ));
        }
        Ok(Shard { index, total })
    }

    /// The shard ordinal of a StatefulSet pod name (`ssm-association-exporter-2` → 2).
    pub fn ordinal_from_hostname(hostname: &str) -> Result<u32, String> {
        let hostname = hostname.trim();
        hostname
            .rsplit_once('-')
            .and_then(|(_, ordinal)| ordinal.parse::<u32>().ok())
            .ok_or_else(|| {
                format!(
                    "--shard.from-hostname: the host name {hostname:?} does not end in -<ordinal> (a StatefulSet pod name such as ssm-association-exporter-2)"
                )
            })
    }

    pub fn is_sharded(self) -> bool {
        self.total > 1
    }

    /// Whether this shard owns the association `id` of `scope`.
    pub fn owns(self, scope: &ScopeKey, id: &str) -> bool {
        if self.total <= 1 {
            return true;
        }
        owner(scope, id, self.total) == self.index
    }
}

/// The shard (of `total`) that owns the association.
pub fn owner(scope: &ScopeKey, id: &str, total: u32) -> u32 {
    let mut hash = Fnv::default();
    hash.write(scope.account_id.as_bytes());
    hash.write(b"/");
    hash.write(scope.region.as_bytes());
    hash.write(b"/");
    hash.write(id.as_bytes());
    jump_consistent_hash(hash.0, total)
}

/// FNV-1a, 64 bits: stable across builds and platforms (unlike `std`'s hasher).
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Lamping and Veach's jump consistent hash: a bucket in `0..buckets` for `key`; when the
/// number of buckets grows from n to n+1, only 1/(n+1) of the keys move, all to the new one.
pub fn jump_consistent_hash(mut key: u64, buckets: u32) -> u32 {
    let buckets = i64::from(buckets.max(1));
    let (mut b, mut j) = (-1i64, 0i64);
    while j < buckets {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    b as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: usize) -> Vec<(ScopeKey, String)> {
        (0..n)
            .map(|i| {
                let scope = ScopeKey {
                    account_id: format!("{:012}", 111_111_111_111u64 + (i % 3) as u64),
                    region: ["us-east-1", "eu-west-1", "ap-south-1"][(i / 3) % 3].to_string(),
                };
                (scope, format!("{i:08x}-0000-4000-8000-{i:012x}"))
            })
            .collect()
    }

    #[test]
    fn every_association_has_exactly_one_owner_and_the_shards_are_balanced() {
        let keys = keys(30_000);
        let shards: Vec<Shard> = (0..3).map(|i| Shard::new(i, 3).unwrap()).collect();
        let mut per_shard = [0usize; 3];
        for (scope, id) in &keys {
            let owners: Vec<&Shard> = shards.iter().filter(|s| s.owns(scope, id)).collect();
            assert_eq!(owners.len(), 1, "{id}");
            per_shard[owners[0].index as usize] += 1;
        }
        for n in per_shard {
            assert!((9_000..=11_000).contains(&n), "{per_shard:?}");
        }
        assert!(Shard::default().owns(&keys[0].0, &keys[0].1));
    }

    /// Going from 3 shards to 4 moves about a quarter of the associations, all to the new
    /// shard; going from 3 to 2 moves only the third shard's.
    #[test]
    fn changing_the_shard_count_moves_as_few_associations_as_possible() {
        let keys = keys(20_000);
        let (mut moved_up, mut moved_down) = (0, 0);
        for (scope, id) in &keys {
            let three = owner(scope, id, 3);
            let four = owner(scope, id, 4);
            if four != three {
                assert_eq!(four, 3, "a key moves only to the new shard");
                moved_up += 1;
            }
            let two = owner(scope, id, 2);
            if three < 2 {
                assert_eq!(two, three, "shards 0 and 1 keep their keys");
            } else {
                moved_down += 1;
            }
        }
        assert!((4_500..=5_500).contains(&moved_up), "{moved_up}");
        assert!((6_000..=7_300).contains(&moved_down), "{moved_down}");
    }

    #[test]
    fn ordinals_come_from_statefulset_pod_names() {
        assert_eq!(
            Shard::ordinal_from_hostname("ssm-association-exporter-2"),
            Ok(2)
        );
        assert_eq!(Shard::ordinal_from_hostname("x-0\n"), Ok(0));
        assert!(Shard::ordinal_from_hostname("ssm-association-exporter").is_err());
        assert!(Shard::ordinal_from_hostname("pod-7f9c").is_err());
        assert!(Shard::new(3, 3).is_err());
        assert!(Shard::new(0, 0).is_err());
    }
}
