//! `cargo lab bench echo` (being written).

use anyhow::{Result, bail};

use crate::image::BootImage;
use crate::options::MachineOptions;

pub fn run(_boot: &BootImage, _options: &MachineOptions) -> Result<()> {
    bail!("bench echo is not written yet")
}
