//! Key groups: the unit of keyed-state partitioning and of rescaling (Flink's scheme).

/// The key group of a key: `fnv1a64(key) % max_parallelism`.
///
/// FNV-1a is fixed here (not `std`'s randomized hasher) so that partitioning is stable
/// across processes and versions, which savepoints and rescaling rely on.
pub fn key_group(key: &[u8], max_parallelism: u16) -> u16 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // Mix the high bits in: FNV's low bits alone are weak for short keys.
    h ^= h >> 32;
    (h % u64::from(max_parallelism.max(1))) as u16
}

/// The key groups a subtask owns: Flink's contiguous ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyGroupRange {
    /// First key group (inclusive).
    pub start: u16,
    /// Last key group (exclusive).
    pub end: u16,
}

impl KeyGroupRange {
    /// The range of `subtask` among `parallelism` subtasks for `max_parallelism` groups.
    pub fn for_subtask(subtask: u32, parallelism: u32, max_parallelism: u16) -> Self {
        let m = u32::from(max_parallelism);
        let start = (subtask * m).div_ceil(parallelism);
        let end = ((subtask + 1) * m).div_ceil(parallelism);
        KeyGroupRange { start: start as u16, end: end as u16 }
    }

    /// The subtask among `parallelism` that owns `group`.
    pub fn subtask_for(group: u16, parallelism: u32, max_parallelism: u16) -> u32 {
        u32::from(group) * parallelism / u32::from(max_parallelism.max(1))
    }

    /// Whether `group` is in the range.
    pub fn contains(&self, group: u16) -> bool {
        (self.start..self.end).contains(&group)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_every_group_once_and_agree_with_the_owner() {
        for par in 1..=7u32 {
            let mut seen = vec![0; 128];
            for s in 0..par {
                let r = KeyGroupRange::for_subtask(s, par, 128);
                for g in r.start..r.end {
                    seen[usize::from(g)] += 1;
                    assert_eq!(KeyGroupRange::subtask_for(g, par, 128), s, "group {g} at parallelism {par}");
                }
            }
            assert!(seen.iter().all(|&n| n == 1), "parallelism {par}: {seen:?}");
        }
        assert_eq!(key_group(b"k1", 128), key_group(b"k1", 128));
    }
}
