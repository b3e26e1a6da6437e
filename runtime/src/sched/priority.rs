//! Priority levels. A priority is a CPU *share*, not a rank: a runnable
//! thread of any priority keeps making progress, and one level up buys 10 %
//! more CPU than its neighbour below. The whole range spans a factor of 41
//! (Linux's nice range spans ~6000): steep enough that a high priority
//! clearly wins, flat enough that the lowest priority's wait stays bounded by
//! tens of milliseconds, not seconds (see `fair`'s starvation bound).

use core::fmt;

/// Thread priority: 0 (lowest) ..= 39 (highest); [`Priority::NORMAL`] is 20.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Priority(u8);

/// Weight of each level: `round(1024 × 1.1^(level − 20))`.
const WEIGHTS: [u32; 40] = [
    152, 167, 184, 203, 223, 245, 270, 297, 326, 359, 395, 434, 478, 525, 578, 636, 699, 769, 846, 931, 1024,
    1126, 1239, 1363, 1499, 1649, 1814, 1995, 2195, 2415, 2656, 2922, 3214, 3535, 3889, 4278, 4705, 5176,
    5693, 6263,
];

impl Priority {
    pub const LOWEST: Priority = Priority(0);
    pub const NORMAL: Priority = Priority(20);
    pub const HIGHEST: Priority = Priority(39);

    /// A priority level, or `None` outside 0..=39.
    pub const fn new(level: u8) -> Option<Priority> {
        if level as usize >= WEIGHTS.len() { None } else { Some(Priority(level)) }
    }

    pub const fn level(self) -> u8 {
        self.0
    }

    /// The share weight; [`Priority::NORMAL`] is 1024.
    pub const fn weight(self) -> u64 {
        WEIGHTS[self.0 as usize] as u64
    }
}

impl Default for Priority {
    fn default() -> Self {
        Priority::NORMAL
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_weighs_1024_and_levels_step_by_a_tenth() {
        assert_eq!(Priority::NORMAL.weight(), 1024);
        for level in 1..40 {
            let ratio = Priority(level).weight() as f64 / Priority(level - 1).weight() as f64;
            assert!((1.08..1.12).contains(&ratio), "level {level}: ratio {ratio}");
        }
    }

    #[test]
    fn out_of_range_levels_are_rejected() {
        assert_eq!(Priority::new(39), Some(Priority::HIGHEST));
        assert_eq!(Priority::new(40), None);
    }
}
