//! Running a lab scenario inside the guest. The kernel runs the scenario
//! named by its `demo=`/`bench=` parameter and reports each measurement as
//! a console line `@lab <kind> key=value …`, then `@lab done` and exits with
//! success. This module boots the guest, collects those records and fails
//! clearly if the scenario did not run to the end.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::image::{self, BootImage};
use crate::options::MachineOptions;
use crate::progress::{self, Progress};
use crate::qemu::{Guest, GuestExit};
use crate::workspace;

/// One `@lab` line.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub kind: String,
    pub fields: BTreeMap<String, String>,
}

impl Record {
    /// Parses `@lab kind k=v k=v`; `None` for other lines.
    pub fn parse(line: &str) -> Option<Record> {
        let rest = line.split_once("@lab ")?.1;
        let mut words = rest.split_whitespace();
        let kind = words.next()?.to_string();
        let fields =
            words.filter_map(|word| word.split_once('=')).map(|(k, v)| (k.into(), v.into())).collect();
        Some(Record { kind, fields })
    }

    pub fn text(&self, key: &str) -> Result<&str> {
        self.fields
            .get(key)
            .map(String::as_str)
            .with_context(|| format!("`@lab {}` has no `{key}`", self.kind))
    }

    pub fn number(&self, key: &str) -> Result<f64> {
        let text = self.text(key)?;
        text.parse().with_context(|| format!("`{key}={text}` is not a number"))
    }
}

/// Builds the kernel (the profile `options` ask for) in the boot form they
/// ask for (PVH by default, or a BIOS/UEFI image).
pub fn boot_image(options: &MachineOptions) -> Result<BootImage> {
    let kernel = workspace::build_kernel(options.profile())?;
    image::build(&kernel, options.firmware())
}

/// Boots `boot` with `param` (e.g. `demo=scheduler`) and returns the
/// scenario's records.
pub fn run(
    boot: &BootImage,
    param: &str,
    options: &MachineOptions,
    timeout: Duration,
) -> Result<Vec<Record>> {
    let options = options.clone().with_param(param);
    progress::note(format!("running `{param}` in the guest ({:?}, {} vCPU)...", options.accel, options.smp));
    let mut guest = Guest::spawn(boot, &options)?;
    let waiting =
        Progress::spinner(&format!("`{param}` in the guest (gives up after {} s)", timeout.as_secs()));
    let exit = guest.wait_exit(timeout);
    drop(waiting);
    let exit = exit?;
    let console = guest.transcript();
    let records: Vec<Record> = console.lines().filter_map(Record::parse).collect();
    if exit != GuestExit::Success || !records.iter().any(|record| record.kind == "done") {
        bail!("the scenario `{param}` did not run to the end ({exit:?}); console:\n{console}");
    }
    Ok(records)
}

/// Percentile (0..=100) of `values` (sorted in place).
pub fn percentile(values: &mut [f64], percent: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let rank = (percent / 100.0 * (values.len() - 1) as f64).round() as usize;
    values[rank.min(values.len() - 1)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lab_lines_and_ignores_others() {
        let record = Record::parse("[ 1.0] INFO  lab: @lab sample t_ms=100 name=hog-10").unwrap();
        assert_eq!(record.kind, "sample");
        assert_eq!(record.number("t_ms").unwrap(), 100.0);
        assert_eq!(record.text("name").unwrap(), "hog-10");
        assert!(record.text("missing").is_err());
        assert!(Record::parse("INFO tenfold: ready").is_none());
    }

    #[test]
    fn percentiles_pick_ranks() {
        let mut values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&mut values, 50.0), 51.0);
        assert_eq!(percentile(&mut values, 99.0), 99.0);
        assert_eq!(percentile(&mut values, 100.0), 100.0);
        assert!(percentile(&mut [], 50.0).is_nan());
    }
}
