//! Sum tree for proportional prioritized experience replay (Schaul et al., 2016).
//!
//! One leaf per replay slot holds that slot's priority; every internal node holds the sum
//! of its two children, so the root is the total priority. Setting a priority and finding
//! the slot at a given prefix mass are O(log n); the total is O(1).
//!
//! Layout: the leaves are padded to the next power of two `base` and stored as an implicit
//! heap (`nodes[1]` is the root, node `i` has children `2i` and `2i + 1`, slot `s` is leaf
//! `base + s`, the padding leaves stay 0). The unpadded "2n array" layout would also be
//! O(log n), but for an `n` that is not a power of two its leaves sit on two levels and the
//! left-to-right leaf order is a rotation of slot order, so the descent would not find the
//! *smallest* slot whose cumulative sum exceeds the mass and the leaves would not be one
//! contiguous slice in slot order. Padding costs at most twice the memory (16 MiB for a
//! million slots).
//!
//! Precision: priorities and sums are `f64`. Every update recomputes the nodes on the
//! leaf-to-root path as the sum of their two children instead of adding a delta, so no
//! error accumulates however many updates are made: each node is always exactly the `f64`
//! sum of its children, the whole tree is a pure function of its leaves, and a tree rebuilt
//! from them ([`SumTree::from_leaves`]) is bit for bit the live one (a restored checkpoint
//! samples exactly as the original would have). `f64` rather than `f32` keeps the root
//! within about `depth * 2^-53` of the exact total, and keeps small priorities visible next
//! to a large total (in `f32` a priority below `total * 2^-24` would vanish from the sums).

use std::fmt;

use rand::{Rng, RngExt};

/// Why a sum-tree operation was refused.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SumTreeError {
    /// A tree needs at least one slot.
    ZeroCapacity,
    /// The capacity is too large to lay out in memory.
    CapacityTooLarge {
        /// The capacity asked for.
        capacity: usize,
    },
    /// A slot index is not below the capacity.
    SlotOutOfRange {
        /// The slot asked for.
        slot: usize,
        /// The tree's capacity.
        capacity: usize,
    },
    /// A priority is negative, NaN or infinite.
    InvalidPriority {
        /// The slot it was meant for.
        slot: usize,
        /// The rejected value.
        priority: f64,
    },
    /// The total priority would overflow to infinity.
    TotalOverflow,
    /// Sampling needs a positive total priority.
    ZeroTotal,
}

impl fmt::Display for SumTreeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SumTreeError::ZeroCapacity => write!(f, "a sum tree needs at least one slot"),
            SumTreeError::CapacityTooLarge { capacity } => {
                write!(f, "sum tree capacity {capacity} is too large")
            }
            SumTreeError::SlotOutOfRange { slot, capacity } => {
                write!(
                    f,
                    "slot {slot} is out of range for a sum tree of {capacity} slots"
                )
            }
            SumTreeError::InvalidPriority { slot, priority } => write!(
                f,
                "priority {priority} for slot {slot} is not a finite non-negative number \
                 (did training diverge?)"
            ),
            SumTreeError::TotalOverflow => {
                write!(f, "the total priority would overflow f64")
            }
            SumTreeError::ZeroTotal => {
                write!(f, "cannot sample: every priority in the sum tree is zero")
            }
        }
    }
}

impl std::error::Error for SumTreeError {}

/// A fixed-capacity sum tree of non-negative finite `f64` priorities, one leaf per slot.
#[derive(Debug, Clone, PartialEq)]
pub struct SumTree {
    /// Number of slots.
    capacity: usize,
    /// Number of leaves after padding: `capacity.next_power_of_two()`.
    base: usize,
    /// Implicit heap of `2 * base` nodes; node 0 is unused, node 1 is the root.
    nodes: Vec<f64>,
}

/// The priority to store for `priority`, or why it is refused (`-0.0` is stored as `0.0`).
fn check_priority(slot: usize, priority: f64) -> Result<f64, SumTreeError> {
    if priority.is_finite() && priority >= 0.0 {
        // `-0.0 + 0.0` is `+0.0`; every other value is unchanged.
        Ok(priority + 0.0)
    } else {
        Err(SumTreeError::InvalidPriority { slot, priority })
    }
}

impl SumTree {
    /// A tree of `capacity` slots, all with priority 0.
    pub fn new(capacity: usize) -> Result<Self, SumTreeError> {
        if capacity == 0 {
            return Err(SumTreeError::ZeroCapacity);
        }
        let base = capacity
            .checked_next_power_of_two()
            .ok_or(SumTreeError::CapacityTooLarge { capacity })?;
        let len = base
            .checked_mul(2)
            .ok_or(SumTreeError::CapacityTooLarge { capacity })?;
        // Sized by a config value: an allocation that cannot be made is an error, not an abort.
        let mut nodes = Vec::new();
        nodes
            .try_reserve_exact(len)
            .map_err(|_| SumTreeError::CapacityTooLarge { capacity })?;
        nodes.resize(len, 0.0);
        Ok(Self {
            capacity,
            base,
            nodes,
        })
    }

    /// Rebuilds a tree in O(n) from leaf priorities in slot order, as [`SumTree::leaves`] gives them.
    pub fn from_leaves(leaves: &[f64]) -> Result<Self, SumTreeError> {
        let mut tree = Self::new(leaves.len())?;
        let base = tree.base;
        for (slot, (node, &priority)) in tree.nodes[base..].iter_mut().zip(leaves).enumerate() {
            *node = check_priority(slot, priority)?;
        }
        for node in (1..base).rev() {
            tree.nodes[node] = tree.nodes[2 * node] + tree.nodes[2 * node + 1];
        }
        if !tree.total().is_finite() {
            return Err(SumTreeError::TotalOverflow);
        }
        Ok(tree)
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Sets the priority of `slot` in O(log n); on error the tree is unchanged.
    pub fn set(&mut self, slot: usize, priority: f64) -> Result<(), SumTreeError> {
        if slot >= self.capacity {
            return Err(SumTreeError::SlotOutOfRange {
                slot,
                capacity: self.capacity,
            });
        }
        let priority = check_priority(slot, priority)?;
        let leaf = self.base + slot;
        let old = self.nodes[leaf];
        self.nodes[leaf] = priority;
        self.refresh_path(leaf);
        if !self.total().is_finite() {
            // Recomputing from the children restores every node bit for bit.
            self.nodes[leaf] = old;
            self.refresh_path(leaf);
            return Err(SumTreeError::TotalOverflow);
        }
        Ok(())
    }

    /// The priority of `slot`, or `None` if it is out of range.
    pub fn get(&self, slot: usize) -> Option<f64> {
        self.leaves().get(slot).copied()
    }

    /// The sum of all priorities, in O(1).
    pub fn total(&self) -> f64 {
        self.nodes[1]
    }

    /// The leaf priorities in slot order, for checkpoints.
    pub fn leaves(&self) -> &[f64] {
        &self.nodes[self.base..self.base + self.capacity]
    }

    /// Draws `batch` slots with probability proportional to priority, one uniform point in
    /// each of `batch` equal segments of `[0, total)`, into `out` (cleared first; it only
    /// allocates if its capacity is below `batch`). The slots come out in ascending order.
    pub fn sample_stratified<R: Rng + ?Sized>(
        &self,
        batch: usize,
        rng: &mut R,
        out: &mut Vec<usize>,
    ) -> Result<(), SumTreeError> {
        out.clear();
        let total = self.total();
        if total <= 0.0 {
            return Err(SumTreeError::ZeroTotal);
        }
        out.reserve(batch);
        let segment = total / batch as f64;
        for i in 0..batch {
            out.push(self.find_prefix((i as f64 + rng.random::<f64>()) * segment));
        }
        Ok(())
    }

    /// The smallest slot whose cumulative priority exceeds `mass`; the total must be positive.
    ///
    /// Always a slot below the capacity with a positive priority, whatever `mass` is: a
    /// mass below 0 gives the first positive slot, and a mass at or past the total (which
    /// rounding can produce, both in the caller's `u * total` and in the subtractions on
    /// the way down, where a node's stored sum may differ from the exact sum of its
    /// children by an ulp) gives the last positive one. The descent only ever enters
    /// nodes with a positive sum: it goes left when the mass falls in the left child, and
    /// also when the right child is empty; since `a + b` rounds to 0 only when `a` and `b`
    /// are both 0, a positive node always has a positive child, so the leaf reached is
    /// positive, hence never a padding leaf.
    fn find_prefix(&self, mut mass: f64) -> usize {
        debug_assert!(self.total() > 0.0, "find_prefix on an all-zero tree");
        let mut node = 1;
        while node < self.base {
            let left = 2 * node;
            let left_sum = self.nodes[left];
            if left_sum > 0.0 && (mass < left_sum || self.nodes[left + 1] <= 0.0) {
                node = left;
            } else {
                mass -= left_sum;
                node = left + 1;
            }
        }
        node - self.base
    }

    /// Recomputes the ancestors of `node` from their children.
    fn refresh_path(&mut self, mut node: usize) {
        while node > 1 {
            node /= 2;
            self.nodes[node] = self.nodes[2 * node] + self.nodes[2 * node + 1];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_pcg::Pcg64;

    fn next_up(x: f64) -> f64 {
        // Only for finite non-negative x (f64::next_up needs Rust 1.86).
        f64::from_bits(x.to_bits() + 1)
    }

    fn next_down(x: f64) -> f64 {
        // Only for finite positive x.
        f64::from_bits(x.to_bits() - 1)
    }

    /// The smallest slot whose cumulative sum, summed left to right, exceeds `mass`.
    fn reference_prefix(leaves: &[f64], mass: f64) -> usize {
        let mut cumulative = 0.0;
        for (slot, &p) in leaves.iter().enumerate() {
            cumulative += p;
            if cumulative > mass {
                return slot;
            }
        }
        unreachable!("mass {mass} is not below the total {cumulative}")
    }

    /// Pearson's chi-square of `counts` against `priorities`; zero-priority slots must have
    /// no count and are not categories.
    fn chi_square(counts: &[u64], priorities: &[f64]) -> f64 {
        let n: u64 = counts.iter().sum();
        let total: f64 = priorities.iter().sum();
        let mut statistic = 0.0;
        for (&count, &p) in counts.iter().zip(priorities) {
            if p == 0.0 {
                assert_eq!(count, 0, "a zero-priority slot was sampled");
            } else {
                let expected = n as f64 * p / total;
                statistic += (count as f64 - expected).powi(2) / expected;
            }
        }
        statistic
    }

    fn stratified_counts(tree: &SumTree, batch: usize, batches: usize, seed: u64) -> Vec<u64> {
        let mut rng = Pcg64::seed_from_u64(seed);
        let mut counts = vec![0u64; tree.capacity()];
        let mut out = Vec::with_capacity(batch);
        for _ in 0..batches {
            tree.sample_stratified(batch, &mut rng, &mut out).unwrap();
            assert_eq!(out.len(), batch);
            for &slot in &out {
                counts[slot] += 1;
            }
        }
        counts
    }

    fn uniform_counts(tree: &SumTree, draws: usize, seed: u64) -> Vec<u64> {
        let mut rng = Pcg64::seed_from_u64(seed);
        let mut counts = vec![0u64; tree.capacity()];
        for _ in 0..draws {
            let slot = tree.find_prefix(rng.random::<f64>() * tree.total());
            counts[slot] += 1;
        }
        counts
    }

    #[test]
    fn new_rejects_zero_and_huge_capacities() {
        assert_eq!(SumTree::new(0), Err(SumTreeError::ZeroCapacity));
        assert_eq!(
            SumTree::new(usize::MAX),
            Err(SumTreeError::CapacityTooLarge {
                capacity: usize::MAX
            })
        );
        assert_eq!(SumTree::from_leaves(&[]), Err(SumTreeError::ZeroCapacity));
        let tree = SumTree::new(7).unwrap();
        assert_eq!(tree.capacity(), 7);
        assert_eq!(tree.total(), 0.0);
        assert_eq!(tree.leaves(), &[0.0; 7]);
    }

    #[test]
    fn totals_follow_sets_and_updates() {
        let mut tree = SumTree::new(5).unwrap();
        tree.set(0, 1.0).unwrap();
        tree.set(3, 4.0).unwrap();
        tree.set(4, 2.5).unwrap();
        assert_eq!(tree.total(), 7.5);
        tree.set(3, 0.5).unwrap();
        assert_eq!(tree.total(), 4.0);
        tree.set(0, 0.0).unwrap();
        assert_eq!(tree.total(), 3.0);
        assert_eq!(tree.get(3), Some(0.5));
        assert_eq!(tree.get(1), Some(0.0));
        assert_eq!(tree.get(5), None);
        assert_eq!(tree.leaves(), &[0.0, 0.0, 0.0, 0.5, 2.5]);
        tree.set(3, 0.0).unwrap();
        tree.set(4, 0.0).unwrap();
        assert_eq!(tree.total(), 0.0);
    }

    #[test]
    fn non_power_of_two_capacities() {
        for n in [1usize, 2, 3, 5, 7, 1000, 1023, 1024, 1025] {
            let mut tree = SumTree::new(n).unwrap();
            for slot in 0..n {
                tree.set(slot, (slot + 1) as f64).unwrap();
            }
            assert_eq!(tree.capacity(), n);
            assert_eq!(tree.leaves().len(), n);
            assert_eq!(tree.total(), (n * (n + 1) / 2) as f64, "n = {n}");
            assert_eq!(tree.get(n), None);
            assert_eq!(
                tree.set(n, 1.0),
                Err(SumTreeError::SlotOutOfRange {
                    slot: n,
                    capacity: n
                })
            );
            // Slot k covers [k(k+1)/2, (k+1)(k+2)/2): check both ends and the middle.
            for slot in 0..n {
                let start = (slot * (slot + 1) / 2) as f64;
                let end = ((slot + 1) * (slot + 2) / 2) as f64;
                assert_eq!(tree.find_prefix(start), slot, "n = {n}");
                assert_eq!(tree.find_prefix((start + end) / 2.0), slot);
                assert_eq!(tree.find_prefix(next_down(end)), slot);
            }
            assert_eq!(tree.find_prefix(tree.total()), n - 1);
            // Integer priorities: the cumulative sums and the descent's subtractions are
            // exact, so the tree agrees with a linear scan on every mass.
            let mut rng = Pcg64::seed_from_u64(n as u64);
            for _ in 0..1000 {
                let mass = rng.random::<f64>() * tree.total();
                assert_eq!(
                    tree.find_prefix(mass),
                    reference_prefix(tree.leaves(), mass)
                );
            }
        }
    }

    #[test]
    fn invalid_priorities_are_errors_and_leave_the_tree_unchanged() {
        let mut tree = SumTree::new(3).unwrap();
        tree.set(1, 2.0).unwrap();
        let before = tree.clone();
        for bad in [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -1.0,
            -f64::MIN_POSITIVE,
        ] {
            let err = tree.set(1, bad).unwrap_err();
            assert!(
                matches!(err, SumTreeError::InvalidPriority { slot: 1, priority } if priority.to_bits() == bad.to_bits()),
                "{err:?}"
            );
            assert!(err.to_string().contains("slot 1"));
            assert_eq!(tree, before);
        }
        assert!(SumTree::from_leaves(&[1.0, f64::NAN]).is_err_and(
            |e| matches!(e, SumTreeError::InvalidPriority { slot: 1, priority } if priority.is_nan())
        ));
        // -0.0 is a valid zero and is stored as +0.0.
        tree.set(1, -0.0).unwrap();
        assert_eq!(tree.get(1).unwrap().to_bits(), 0.0f64.to_bits());
        assert_eq!(tree.total().to_bits(), 0.0f64.to_bits());
    }

    #[test]
    fn total_overflow_is_an_error_and_leaves_the_tree_unchanged() {
        let mut tree = SumTree::new(3).unwrap();
        tree.set(0, f64::MAX).unwrap();
        tree.set(2, 1.0).unwrap();
        let before = tree.clone();
        assert_eq!(tree.set(1, f64::MAX), Err(SumTreeError::TotalOverflow));
        assert_eq!(tree, before);
        assert_eq!(
            SumTree::from_leaves(&[f64::MAX, f64::MAX]),
            Err(SumTreeError::TotalOverflow)
        );
    }

    #[test]
    fn sampling_an_all_zero_tree_is_an_error() {
        let mut rng = Pcg64::seed_from_u64(1);
        let mut out = vec![7, 7];
        let mut tree = SumTree::new(4).unwrap();
        assert_eq!(
            tree.sample_stratified(8, &mut rng, &mut out),
            Err(SumTreeError::ZeroTotal)
        );
        assert!(out.is_empty());
        assert_eq!(
            tree.sample_stratified(0, &mut rng, &mut out),
            Err(SumTreeError::ZeroTotal)
        );
        tree.set(2, 1.0).unwrap();
        tree.set(2, 0.0).unwrap();
        assert_eq!(
            tree.sample_stratified(1, &mut rng, &mut out),
            Err(SumTreeError::ZeroTotal)
        );
        tree.set(2, 1.0).unwrap();
        tree.sample_stratified(0, &mut rng, &mut out).unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn single_slot() {
        let mut tree = SumTree::new(1).unwrap();
        tree.set(0, 3.0).unwrap();
        assert_eq!(tree.total(), 3.0);
        let mut rng = Pcg64::seed_from_u64(2);
        let mut out = Vec::new();
        tree.sample_stratified(64, &mut rng, &mut out).unwrap();
        assert_eq!(out, vec![0; 64]);
        for mass in [-1.0, 0.0, 3.0, f64::INFINITY, f64::NAN] {
            assert_eq!(tree.find_prefix(mass), 0);
        }
    }

    #[test]
    fn rounding_edge_masses_never_give_empty_or_padding_slots() {
        // Trailing zero slot: mass == total goes right at the root, then must not take
        // the empty right child.
        let tree = SumTree::from_leaves(&[1.0, 1.0, 1.0, 0.0]).unwrap();
        assert_eq!(tree.find_prefix(3.0), 2);
        // Capacity 3: the fourth leaf is padding, out of range.
        let tree = SumTree::from_leaves(&[1.0, 1.0, 1.0]).unwrap();
        assert_eq!(tree.find_prefix(3.0), 2);
        assert_eq!(tree.find_prefix(next_up(3.0)), 2);
        // Leading, inner and trailing zeros, padded to 8.
        let leaves = [0.0, 0.0, 1.0, 0.0, 2.0, 0.0];
        let tree = SumTree::from_leaves(&leaves).unwrap();
        let cases = [
            (f64::NEG_INFINITY, 2),
            (-1.0, 2),
            (-0.0, 2),
            (0.0, 2),
            (next_down(1.0), 2),
            (1.0, 4),
            (next_down(3.0), 4),
            (3.0, 4),
            (next_up(3.0), 4),
            (f64::MAX, 4),
            (f64::INFINITY, 4),
            (f64::NAN, 4),
        ];
        for (mass, slot) in cases {
            assert_eq!(tree.find_prefix(mass), slot, "mass {mass}");
        }
        // Subnormal priorities.
        let tiny = f64::from_bits(1);
        let tree = SumTree::from_leaves(&[tiny, 0.0, tiny, 0.0, 0.0]).unwrap();
        assert_eq!(tree.total(), 2.0 * tiny);
        assert_eq!(tree.find_prefix(0.0), 0);
        assert_eq!(tree.find_prefix(tiny), 2);
        assert_eq!(tree.find_prefix(2.0 * tiny), 2);
    }

    #[test]
    fn rounding_edge_masses_on_random_trees() {
        // Inexact priorities with runs of zeros, masses at and around the edges where the
        // stored sums and the subtractions on the way down round.
        let mut rng = Pcg64::seed_from_u64(3);
        for _ in 0..2000 {
            let n = rng.random_range(1..70);
            let mut leaves = vec![0.0; n];
            for p in leaves.iter_mut() {
                if rng.random::<f64>() < 0.5 {
                    *p = rng.random::<f64>() * 10f64.powi(rng.random_range(-8..8));
                }
            }
            let tree = SumTree::from_leaves(&leaves).unwrap();
            if tree.total() == 0.0 {
                continue;
            }
            let total = tree.total();
            let mut masses = vec![0.0, total, next_up(total), next_down(total)];
            masses.push(total * (1.0 - f64::EPSILON));
            masses.extend((0..20).map(|_| rng.random::<f64>() * total));
            // Masses at the leaf boundaries as a left-to-right scan computes them.
            let mut cumulative = 0.0;
            for &p in &leaves {
                cumulative += p;
                masses.extend([cumulative, next_down(cumulative.max(f64::MIN_POSITIVE))]);
            }
            for mass in masses {
                let slot = tree.find_prefix(mass);
                assert!(slot < n && leaves[slot] > 0.0, "slot {slot} for {leaves:?}");
                // Up to rounding, the slot's interval holds the mass.
                let start: f64 = leaves[..slot].iter().sum();
                let end = start + leaves[slot];
                let tolerance = 1e-12 * total;
                assert!(
                    start - tolerance <= mass.min(total),
                    "{mass} before slot {slot}"
                );
                assert!(
                    mass < end + tolerance || mass >= total,
                    "{mass} past slot {slot}"
                );
            }
        }
    }

    #[test]
    fn zero_priority_slots_are_never_sampled() {
        let mut rng = Pcg64::seed_from_u64(4);
        let mut tree = SumTree::new(1000).unwrap();
        for slot in 0..1000 {
            if slot % 3 != 0 {
                tree.set(slot, rng.random::<f64>() + 1e-3).unwrap();
            }
        }
        // Slots at the end and the start, too.
        tree.set(999, 0.0).unwrap();
        tree.set(1, 0.0).unwrap();
        let counts = stratified_counts(&tree, 128, 1000, 5);
        for (slot, &count) in counts.iter().enumerate() {
            if tree.get(slot) == Some(0.0) {
                assert_eq!(count, 0, "slot {slot}");
            }
        }
        let counts = uniform_counts(&tree, 100_000, 6);
        for (slot, &count) in counts.iter().enumerate() {
            if tree.get(slot) == Some(0.0) {
                assert_eq!(count, 0, "slot {slot}");
            }
        }
    }

    #[test]
    fn leaves_round_trip_bit_for_bit() {
        let mut rng = Pcg64::seed_from_u64(7);
        let mut tree = SumTree::new(1000).unwrap();
        for _ in 0..20_000 {
            let slot = rng.random_range(0..1000);
            let priority = if rng.random::<f64>() < 0.1 {
                0.0
            } else {
                rng.random::<f64>().powi(3) * 100.0
            };
            tree.set(slot, priority).unwrap();
        }
        let restored = SumTree::from_leaves(tree.leaves()).unwrap();
        assert_eq!(restored, tree);
        assert_eq!(restored.total().to_bits(), tree.total().to_bits());
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let (mut rng_a, mut rng_b) = (Pcg64::seed_from_u64(8), Pcg64::seed_from_u64(8));
        for _ in 0..100 {
            tree.sample_stratified(64, &mut rng_a, &mut a).unwrap();
            restored.sample_stratified(64, &mut rng_b, &mut b).unwrap();
            assert_eq!(a, b);
        }
    }

    #[test]
    fn many_small_updates_do_not_drift() {
        let n = 4096;
        let mut rng = Pcg64::seed_from_u64(9);
        let mut tree = SumTree::new(n).unwrap();
        for slot in 0..n {
            tree.set(slot, 1.0).unwrap();
        }
        for _ in 0..1_000_000 {
            let slot = rng.random_range(0..n);
            tree.set(slot, rng.random::<f64>() * 1e-3).unwrap();
        }
        // The root is exactly what a fresh build from the leaves gives...
        let rebuilt = SumTree::from_leaves(tree.leaves()).unwrap();
        assert_eq!(tree.total().to_bits(), rebuilt.total().to_bits());
        // ...and within rounding of a compensated sum.
        let (mut sum, mut compensation) = (0.0f64, 0.0f64);
        for &p in tree.leaves() {
            let y = p - compensation;
            let t = sum + y;
            compensation = (t - sum) - y;
            sum = t;
        }
        assert!(
            (tree.total() - sum).abs() <= 1e-13 * sum,
            "{} vs {sum}",
            tree.total()
        );
    }

    #[test]
    fn sampling_frequencies_match_priorities() {
        let priorities = [1.0, 2.0, 3.0, 4.0, 0.0, 5.0, 0.5, 10.0];
        let tree = SumTree::from_leaves(&priorities).unwrap();
        assert_eq!(tree.total(), 25.5);
        // 7 positive categories: 6 degrees of freedom; the 99.9% quantile of chi-square(6)
        // is 22.458 (solving exp(-x/2) * (1 + x/2 + (x/2)^2/2) = 0.001 for x).
        const CRITICAL_DF6: f64 = 22.458;
        // Plain proportional draws (multinomial): the statistic is chi-square(6).
        let counts = uniform_counts(&tree, 200_000, 10);
        let statistic = chi_square(&counts, &priorities);
        assert!(
            statistic < CRITICAL_DF6,
            "uniform draws: {statistic} ({counts:?})"
        );
        // The test can fail: the same counts are far off equal weights on the 7 slots.
        let equal = priorities.map(|p| if p > 0.0 { 1.0 } else { 0.0 });
        assert!(chi_square(&counts, &equal) > 1000.0 * CRITICAL_DF6);
        // Stratified minibatches: 6250 batches of 32. Stratification only lowers the
        // variance, so the same bound holds with room to spare.
        let counts = stratified_counts(&tree, 32, 6250, 11);
        assert_eq!(counts.iter().sum::<u64>(), 200_000);
        let statistic = chi_square(&counts, &priorities);
        assert!(
            statistic < CRITICAL_DF6,
            "stratified: {statistic} ({counts:?})"
        );
    }

    #[test]
    fn stratified_batches_are_ascending_with_one_slot_per_segment() {
        let mut rng = Pcg64::seed_from_u64(12);
        let mut tree = SumTree::new(300).unwrap();
        for slot in 0..300 {
            tree.set(slot, rng.random::<f64>()).unwrap();
        }
        let mut out = Vec::with_capacity(128);
        let buffer = out.as_ptr();
        for _ in 0..100 {
            tree.sample_stratified(128, &mut rng, &mut out).unwrap();
            assert_eq!(out.len(), 128);
            assert!(out.windows(2).all(|w| w[0] <= w[1]), "{out:?}");
            // Segment i is [i, i + 1) * total / 128: slot out[i] must overlap it.
            let segment = tree.total() / 128.0;
            for (i, &slot) in out.iter().enumerate() {
                let start: f64 = tree.leaves()[..slot].iter().sum();
                let end = start + tree.leaves()[slot];
                let tolerance = 1e-12 * tree.total();
                assert!(start <= (i + 1) as f64 * segment + tolerance);
                assert!(end >= i as f64 * segment - tolerance);
            }
        }
        assert_eq!(out.as_ptr(), buffer, "the caller's buffer was reallocated");
    }

    #[test]
    fn all_equal_priorities() {
        // Exact arithmetic (powers of two): a batch as large as the tree takes every slot
        // exactly once.
        for n in [5usize, 1000] {
            let tree = SumTree::from_leaves(&vec![0.25; n]).unwrap();
            let mut rng = Pcg64::seed_from_u64(13);
            let mut out = Vec::new();
            for _ in 0..100 {
                tree.sample_stratified(n, &mut rng, &mut out).unwrap();
                assert!(out.iter().copied().eq(0..n));
            }
        }
        // Inexact priority, plain draws: 10 categories, 9 degrees of freedom; the 99.9%
        // quantile of chi-square(9) is 27.877.
        let priorities = [0.37; 10];
        let tree = SumTree::from_leaves(&priorities).unwrap();
        let counts = uniform_counts(&tree, 200_000, 14);
        let statistic = chi_square(&counts, &priorities);
        assert!(statistic < 27.877, "{statistic} ({counts:?})");
        let counts = stratified_counts(&tree, 32, 6250, 15);
        let statistic = chi_square(&counts, &priorities);
        assert!(statistic < 27.877, "{statistic} ({counts:?})");
    }

    #[test]
    fn one_dominating_slot() {
        // 5 categories, 4 degrees of freedom; the 99.9% quantile of chi-square(4) is
        // 18.467 (solving exp(-x/2) * (1 + x/2) = 0.001). 200k draws give each small
        // slot about 199 expected hits, plenty for the chi-square approximation.
        let priorities = [1.0, 1.0, 1.0, 1000.0, 1.0];
        let tree = SumTree::from_leaves(&priorities).unwrap();
        let counts = uniform_counts(&tree, 200_000, 16);
        let statistic = chi_square(&counts, &priorities);
        assert!(statistic < 18.467, "{statistic} ({counts:?})");
        let counts = stratified_counts(&tree, 32, 6250, 17);
        let statistic = chi_square(&counts, &priorities);
        assert!(statistic < 18.467, "{statistic} ({counts:?})");
        // Overwhelming dominance: the other slots' share (1e-12) never shows up, and the
        // dominating slot is found even for masses at the very ends.
        let tree = SumTree::from_leaves(&[1.0, 1.0, 1e12, 1.0, 0.0]).unwrap();
        let counts = stratified_counts(&tree, 128, 1000, 18);
        assert_eq!(counts, vec![0, 0, 128_000, 0, 0]);
        assert_eq!(tree.find_prefix(0.5), 0);
        assert_eq!(tree.find_prefix(tree.total()), 3);
    }
}
