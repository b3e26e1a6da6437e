//! Network namespaces with a tap device, so a guest can be reached over a
//! real (host kernel) TCP/IP path instead of QEMU's user networking, without
//! touching the host's own network configuration.
//!
//! [`Namespace::create`] makes `<prefix>-<pid>-<n>` with `lo` up and a tap
//! device `tap0` holding the host side of the guest's link, 10.0.2.2/24 (the
//! guest is 10.0.2.15, its gateway 10.0.2.2). QEMU runs inside it through
//! `ip netns exec` ([`crate::options::Network::Tap`]), and host code reaches
//! the guest from a thread that entered it ([`Namespace::run_in`]). Dropping
//! the handle deletes the namespace; the tap device goes with it once the
//! last process inside (QEMU) has exited.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context, Result, bail};

use crate::options::MachineOptions;

/// The tap device inside every namespace made here.
pub const TAP_IFNAME: &str = "tap0";
/// The namespace's side of the guest's link.
pub const HOST_ADDRESS: &str = "10.0.2.2/24";
/// The guest's address on the link (the kernel's default `ip=`).
pub const GUEST_ADDRESS: [u8; 4] = [10, 0, 2, 15];

const NETNS_DIR: &str = "/var/run/netns";

/// The `ip` program (iproute2), on PATH or in the sbin directories that a
/// non-login PATH may lack.
pub fn ip_program() -> Option<PathBuf> {
    crate::prereq::which("ip").or_else(|| {
        ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
            .map(PathBuf::from)
            .into_iter()
            .find(|p| p.is_file())
    })
}

/// Why namespaces with a tap cannot be made here, or `None` if they can:
/// that needs root, `ip` and `/dev/net/tun`.
pub fn unavailable() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root (network namespaces and tap devices need root)".into());
    }
    if ip_program().is_none() {
        return Some("`ip` (iproute2) is not installed".into());
    }
    if !std::path::Path::new("/dev/net/tun").exists() {
        return Some("/dev/net/tun is missing (no tun/tap support)".into());
    }
    None
}

/// A network namespace this process created; deleted on drop.
pub struct Namespace {
    name: String,
    /// `/var/run/netns/<name>`, kept open for `setns`.
    file: Option<File>,
}

impl Namespace {
    /// Creates `<prefix>-<pid>-<n>` with `lo` up and [`TAP_IFNAME`] at
    /// [`HOST_ADDRESS`], up. Namespaces of the same prefix left behind by
    /// processes that no longer exist (killed before they could clean up)
    /// are deleted first.
    pub fn create(name_prefix: &str) -> Result<Namespace> {
        if let Some(reason) = unavailable() {
            bail!("cannot create a network namespace: {reason}");
        }
        if name_prefix.is_empty() || !name_prefix.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            bail!("namespace prefix `{name_prefix}` must be non-empty ASCII letters, digits and dashes");
        }
        remove_stale(name_prefix);
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!("{name_prefix}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        tap_netns_script("up", &name)?;
        // From here on, dropping `namespace` deletes it (also when a step
        // below fails).
        let mut namespace = Namespace { name, file: None };
        let name = namespace.name.clone();
        let path = format!("{NETNS_DIR}/{name}");
        namespace.file = Some(File::open(&path).with_context(|| format!("opening {path}"))?);
        Ok(namespace)
    }

    /// The namespace's name (for `ip netns exec` and `ip -n`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `options` with the guest's card on this namespace's tap.
    pub fn machine(&self, options: &MachineOptions) -> MachineOptions {
        options.clone().on_tap_in(&self.name, TAP_IFNAME)
    }

    /// Runs `f` on a new thread that first enters this namespace: sockets it
    /// (and threads it spawns) create live in the namespace. Panics in `f`
    /// propagate to the caller.
    pub fn run_in<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let file = self.file.as_ref().expect("opened in create");
        let fd = file.as_raw_fd();
        let id = identity(&file.metadata().expect("fstat of a namespace file"));
        let name = &self.name;
        std::thread::scope(|scope| {
            let thread = scope.spawn(move || {
                // SAFETY: `fd` is an open namespace file owned by `self`,
                // which outlives this scoped thread; setns changes only the
                // calling thread's network namespace.
                let entered = unsafe { libc::setns(fd, libc::CLONE_NEWNET) };
                if entered != 0 {
                    panic!("entering network namespace {name}: {}", std::io::Error::last_os_error());
                }
                ENTERED.set(Some(id));
                f()
            });
            match thread.join() {
                Ok(value) => value,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        self.file = None;
        if let Err(error) = tap_netns_script("down", &self.name) {
            crate::progress::note(format!(
                "warning: could not delete network namespace {}: {error:#}",
                self.name
            ));
        }
    }
}

/// Runs qemu/tap-netns.sh (the set-up a user can run by hand).
fn tap_netns_script(verb: &str, name: &str) -> Result<()> {
    let script = crate::workspace::root().join("qemu/tap-netns.sh");
    let mut command = Command::new("sh");
    command.arg(&script).args([verb, name]);
    run(command, &format!("{} {verb} {name}", script.display()))
}

/// Runs `ip args…`.
fn ip(args: &[&str]) -> Result<()> {
    let program = ip_program().context("`ip` (iproute2) is not installed")?;
    let mut command = Command::new(&program);
    command.args(args);
    run(command, &format!("ip {}", args.join(" ")))
}

/// Runs `command` (`what` names it in errors), failing with its stderr.
fn run(mut command: Command, what: &str) -> Result<()> {
    let output = command.output().with_context(|| format!("running {what}"))?;
    if !output.status.success() {
        bail!("`{what}` failed ({}): {}", output.status, String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(())
}

/// The pid in `<prefix>-<pid>-<n>`, if `name` has exactly that shape.
fn owner_pid(name: &str, prefix: &str) -> Option<u32> {
    let rest = name.strip_prefix(prefix)?.strip_prefix('-')?;
    let (pid, n) = rest.split_once('-')?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

/// Deletes namespaces named like ours whose creating process is gone.
fn remove_stale(prefix: &str) {
    let Ok(entries) = std::fs::read_dir(NETNS_DIR) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = owner_pid(&name, prefix)
            && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        {
            crate::progress::note(format!("deleting network namespace {name} left behind by process {pid}"));
            let _ = ip(&["netns", "delete", &name]);
        }
    }
}

thread_local! {
    /// The namespace (device, inode) this thread entered in [`Namespace::run_in`].
    static ENTERED: std::cell::Cell<Option<(u64, u64)>> = const { std::cell::Cell::new(None) };
}

fn identity(metadata: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (metadata.dev(), metadata.ino())
}

/// Whether the calling thread is inside a namespace that a [`Namespace`]
/// of this process made (it entered it through [`Namespace::run_in`] and is
/// still there).
pub fn in_private_namespace() -> bool {
    let current = std::fs::metadata("/proc/thread-self/ns/net").map(|m| identity(&m)).ok();
    ENTERED.get().is_some_and(|entered| Some(entered) == current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_names_are_recognised_exactly() {
        assert_eq!(owner_pid("tenfold-123-0", "tenfold"), Some(123));
        assert_eq!(owner_pid("tenfold-123-17", "tenfold"), Some(123));
        for other in ["tenfold-123", "tenfold-x-1", "tenfold-1-", "tenfoldx-1-2", "other-1-2", "tenfold-1-2a"]
        {
            assert_eq!(owner_pid(other, "tenfold"), None, "{other}");
        }
    }
}
