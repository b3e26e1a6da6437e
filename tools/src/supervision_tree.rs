//! Reading the guest shell's `tree` (its supervision trees, see the README's
//! Supervision section): the block it prints, a child's task id, the
//! restart total and the restart latency. Used by the isolation demo and the
//! supervision tests.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::qemu::Guest;

/// Longest wait for one `tree` answer.
const ANSWER: Duration = Duration::from_secs(30);

/// Sends `tree` and returns its output, from its first line to its
/// `restarts:` line.
pub fn read(guest: &mut Guest) -> Result<String> {
    guest.send("tree\r")?;
    guest.wait_for_new("restarts:", ANSWER)?;
    let transcript = guest.transcript();
    let lines: Vec<&str> = transcript.lines().collect();
    let end = lines.iter().rposition(|line| line.starts_with("restarts:")).context("no tree")?;
    let start = lines[..end].iter().rposition(|line| line.contains("tenfold>")).map_or(0, |i| i + 1);
    Ok(lines[start..=end].join("\n"))
}

/// Reads `tree` every `poll` until `done` holds for it, for at most `within`.
pub fn wait_until(
    guest: &mut Guest,
    within: Duration,
    poll: Duration,
    done: impl Fn(&str) -> bool,
) -> Result<String> {
    let deadline = Instant::now() + within;
    loop {
        let tree = read(guest)?;
        if done(&tree) {
            return Ok(tree);
        }
        if Instant::now() > deadline {
            bail!("the supervision tree never got there:\n{tree}");
        }
        std::thread::sleep(poll);
    }
}

/// The task id of child `name` in a `tree` text.
pub fn task_id(tree: &str, name: &str) -> Result<u32> {
    let needle = format!(" {name} task ");
    tree.lines()
        .find_map(|line| line.split(&needle).nth(1)?.split(' ').next()?.parse().ok())
        .with_context(|| format!("no running `{name}` in:\n{tree}"))
}

/// The total from the `restarts:` line.
pub fn restarts(tree: &str) -> Result<u64> {
    let line = tree.lines().last().context("an empty tree")?;
    line.trim_start_matches("restarts: ")
        .split(';')
        .next()
        .and_then(|total| total.parse().ok())
        .with_context(|| format!("no restart total in `{line}`"))
}

/// `(p50, p99)` µs from the `restart latency … p50 X us, p99 Y us` line.
pub fn restart_latency_us(tree: &str) -> Option<(f64, f64)> {
    let line = tree.lines().last()?;
    let after = |key: &str| line.split(key).nth(1)?.split_whitespace().next()?.parse::<f64>().ok();
    Some((after(" p50 ")?, after(" p99 ")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_task_ids_restarts_and_restart_latency() {
        let tree = "tree `demo`:\n  supervisor `workers`: one_for_one\n        worker-b task 14 (permanent, restarts 1)\n\
                    restarts: 3; restart latency (death -> replacement runnable) p50 1254 us, p99 2585 us, max 5411 us over the last 3";
        assert_eq!(task_id(tree, "worker-b").unwrap(), 14);
        assert!(task_id(tree, "worker-a").is_err());
        assert_eq!(restarts(tree).unwrap(), 3);
        assert_eq!(restarts("restarts: 0").unwrap(), 0);
        assert!(restarts("no tree").is_err());
        assert_eq!(restart_latency_us(tree), Some((1254.0, 2585.0)));
        assert_eq!(restart_latency_us("restarts: 0"), None);
    }
}
