//! The Linux reference guest: Debian's stock kernel with a busybox
//! initramfs and a C echo server of the same shape as Tenfold's, booted on
//! the same virtual machine ([`crate::qemu::machine_arguments`]), so boot
//! time and echo figures can be compared side by side.
//!
//! This module owns preparing it ([`prepare`]) and booting it
//! ([`LinuxGuest::command`], [`LinuxGuest::spawn`]). Everything is built
//! under [`cache_dir`] (`target/linux-guest/`) and reused:
//! - `debs/`, `kernel/`: Debian's `linux-image-amd64` (the versioned package
//!   it depends on), fetched with `apt-get download` and unpacked with
//!   `dpkg-deb -x`; never installed on the host. The first package fetched
//!   stays in use; delete the directory to take a newer one.
//! - `vmlinux`: the kernel decompressed from the `vmlinuz` bzImage
//!   ([`bzimage`]) — an ELF with a PVH note, which QEMU's `-kernel` boots
//!   directly (about twice as fast as the bzImage under TCG). Redone when
//!   the bzImage changes.
//! - `echo_server`: `tools/linux-guest/echo_server.c` built with
//!   `gcc -static -O2`; rebuilt when the source changes.
//! - `initramfs.cpio` (newc, uncompressed: nothing to inflate under TCG;
//!   [`cpio`]): busybox-static, the virtio-net modules in dependency order
//!   ([`modules`]), the echo server and an `/init` that configures eth0 as
//!   10.0.2.15/24 via 10.0.2.2, starts the server and prints
//!   [`READY_MARKER`]. Rewritten only when its bytes change.
//!
//! Host tools (apt-get, dpkg-deb, xz, gcc, busybox-static) are installed
//! with apt-get when missing and running as root; otherwise the error names
//! the command to run.

pub mod bzimage;
pub mod cpio;
pub mod modules;

use std::ffi::OsStr;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::accel::{self, HostFacts};
use crate::options::MachineOptions;
use crate::qemu::{self, ECHO_PORT, Guest};
use crate::{netns, prereq, workspace};
use bzimage::Compression;

/// The console line `/init` prints once the echo server listens.
pub const READY_MARKER: &str = "linux-guest: echo server ready";
/// The guest's name in tables and headlines.
pub const LABEL: &str = "Linux";
/// Linux with this initramfs does not boot in less.
pub const MIN_MEMORY_MIB: u32 = 96;
/// `quiet`: printing the boot log on the emulated UART costs boot time;
/// `panic=-1` with QEMU's `-no-reboot` turns a panic into QEMU exiting;
/// `mitigations=off`: Linux's strongest baseline — Tenfold has no
/// speculative-execution mitigations either, and under `-cpu max` they make
/// every Linux syscall and interrupt dearer.
pub const KERNEL_COMMAND_LINE: &str = "console=ttyS0 quiet panic=-1 mitigations=off";

/// Debian's metapackage for the current kernel.
const KERNEL_METAPACKAGE: &str = "linux-image-amd64";
/// The modules the guest needs; their dependencies come from modinfo.
const MODULE_ROOTS: [&str; 2] = ["virtio_pci", "virtio_net"];
const ECHO_SERVER_SOURCE: &str = "tools/linux-guest/echo_server.c";
const BUSYBOX: &str = "/bin/busybox";
const BUSYBOX_PACKAGE: &str = "busybox-static";
/// `libc.a`, which `gcc -static` links (Debian's libc6-dev).
const STATIC_LIBC: &str = "/usr/lib/x86_64-linux-gnu/libc.a";
/// Busybox applets linked in `/bin` (`/init` and a console shell use them).
const APPLETS: [&str; 12] =
    ["sh", "mount", "insmod", "ip", "echo", "sleep", "cat", "ls", "ps", "dmesg", "mkdir", "netstat"];
/// Marks an unpacked kernel package as complete; holds the .deb's name.
const UNPACKED_MARKER: &str = ".unpacked";

/// A prepared Linux guest: what QEMU's `-kernel` and `-initrd` take.
#[derive(Clone, Debug)]
pub struct LinuxGuest {
    /// The decompressed kernel (ELF with a PVH entry note).
    pub vmlinux: PathBuf,
    /// The newc initramfs.
    pub initramfs: PathBuf,
    /// The kernel release, e.g. `6.1.0-57-amd64`.
    pub kernel_release: String,
}

/// Where the guest's pieces are built and kept.
pub fn cache_dir() -> PathBuf {
    workspace::target_dir().join("linux-guest")
}

/// Fetches, extracts and builds whatever is missing or stale (see the
/// module notes); a second call only checks.
pub fn prepare() -> Result<LinuxGuest> {
    let dir = cache_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let kernel = unpacked_kernel(&dir)?;
    let vmlinux = decompressed_kernel(&kernel, &dir)?;
    let echo_server = echo_server(&dir)?;
    let initramfs = initramfs(&kernel, &echo_server, &dir)?;
    Ok(LinuxGuest { vmlinux, initramfs, kernel_release: kernel.release })
}

impl LinuxGuest {
    /// The QEMU command that boots this guest on the machine `options`
    /// describe (memory, CPUs, accelerator, user-net with `port` or a tap).
    /// Tenfold's own options (`--param`, `--uefi`, `--gdb`) do not apply
    /// and are ignored.
    pub fn command(&self, options: &MachineOptions) -> Result<Command> {
        let arguments = self.arguments(options)?;
        let (program, prefix) = qemu::launcher(&options.network(), prereq::qemu()?)?;
        let mut command = Command::new(program);
        command.args(prefix).args(arguments);
        Ok(command)
    }

    /// QEMU's arguments for [`LinuxGuest::command`].
    fn arguments(&self, options: &MachineOptions) -> Result<Vec<std::ffi::OsString>> {
        if options.memory < MIN_MEMORY_MIB {
            bail!("the Linux guest needs at least {MIN_MEMORY_MIB} MiB (--memory {})", options.memory);
        }
        let accel = accel::resolve(options.accel, &HostFacts::probe()).map_err(anyhow::Error::msg)?;
        let mut arguments: Vec<std::ffi::OsString> =
            qemu::machine_arguments(options, accel)?.into_iter().map(Into::into).collect();
        arguments.extend(["-kernel".into(), self.vmlinux.clone().into_os_string()]);
        arguments.extend(["-initrd".into(), self.initramfs.clone().into_os_string()]);
        arguments.extend(["-append".into(), KERNEL_COMMAND_LINE.into()]);
        Ok(arguments)
    }

    /// Starts the guest with its console captured; it is ready when
    /// [`READY_MARKER`] appears.
    pub fn spawn(&self, options: &MachineOptions) -> Result<Guest> {
        Guest::spawn_command(self.command(options)?)
    }
}

/// The unpacked kernel package.
struct UnpackedKernel {
    /// The `dpkg-deb -x` tree.
    root: PathBuf,
    release: String,
}

impl UnpackedKernel {
    fn bzimage(&self) -> PathBuf {
        self.root.join("boot").join(format!("vmlinuz-{}", self.release))
    }

    fn modules_dir(&self) -> PathBuf {
        self.root.join("lib/modules").join(&self.release)
    }
}

/// The unpacked kernel package, fetched and unpacked on first use.
fn unpacked_kernel(dir: &Path) -> Result<UnpackedKernel> {
    let root = dir.join("kernel");
    if root.join(UNPACKED_MARKER).is_file() {
        return Ok(UnpackedKernel { release: release_of(&root)?, root });
    }
    let deb = download_kernel_package(&dir.join("debs"))?;
    let dpkg_deb = prereq::program("dpkg-deb", "dpkg")?;
    let partial = dir.join("kernel.partial");
    remove_dir_if_present(&partial)?;
    remove_dir_if_present(&root)?;
    eprintln!("lab: unpacking {}", deb.display());
    run(Command::new(dpkg_deb).arg("-x").arg(&deb).arg(&partial))?;
    let deb_name = deb.file_name().unwrap_or_default().to_string_lossy().into_owned();
    std::fs::write(partial.join(UNPACKED_MARKER), format!("{deb_name}\n"))?;
    std::fs::rename(&partial, &root)
        .with_context(|| format!("renaming {} to {}", partial.display(), root.display()))?;
    Ok(UnpackedKernel { release: release_of(&root)?, root })
}

/// The one release directory under `lib/modules`.
fn release_of(root: &Path) -> Result<String> {
    let modules = root.join("lib/modules");
    let releases: Vec<String> = std::fs::read_dir(&modules)
        .with_context(|| format!("reading {}", modules.display()))?
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.path().is_dir())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    match releases.as_slice() {
        [release] => Ok(release.clone()),
        _ => bail!("expected one kernel release in {}, found {releases:?}", modules.display()),
    }
}

/// `apt-get download`s the kernel package the metapackage depends on into
/// `debs`, unless a .deb of it is already there.
fn download_kernel_package(debs: &Path) -> Result<PathBuf> {
    let apt_cache = prereq::program("apt-cache", "apt")?;
    let apt_get = prereq::program("apt-get", "apt")?;
    let output = run(Command::new(apt_cache).args(["depends", KERNEL_METAPACKAGE]))?;
    let package = output
        .lines()
        .filter_map(|line| line.trim().strip_prefix("Depends:"))
        .map(str::trim)
        .find(|name| name.starts_with("linux-image-") && !name.contains('<'))
        .with_context(|| {
            format!(
                "`apt-cache depends {KERNEL_METAPACKAGE}` names no linux-image package (run `apt-get update`?):\n{output}"
            )
        })?
        .to_string();
    std::fs::create_dir_all(debs).with_context(|| format!("creating {}", debs.display()))?;
    let find = || -> Result<Option<PathBuf>> {
        let prefix = format!("{package}_");
        Ok(std::fs::read_dir(debs)?.filter_map(|entry| entry.ok().map(|entry| entry.path())).find(|path| {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            name.starts_with(&prefix) && name.ends_with(".deb")
        }))
    };
    if let Some(deb) = find()? {
        return Ok(deb);
    }
    eprintln!("lab: downloading {package} (Debian's kernel for the Linux reference guest, ~70 MB)");
    let mut download = Command::new(apt_get);
    download.current_dir(debs).arg("download");
    // apt drops to the `_apt` user for downloads; it may not be able to
    // write into the target directory.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        download.args(["-o", "APT::Sandbox::User=root"]);
    }
    run(download.arg(&package))?;
    find()?.with_context(|| {
        format!("`apt-get download {package}` left no {package}_*.deb in {}", debs.display())
    })
}

/// `vmlinux` decompressed from the package's bzImage, redone when the
/// bzImage changes (its path, size and mtime are the stamp).
fn decompressed_kernel(kernel: &UnpackedKernel, dir: &Path) -> Result<PathBuf> {
    let bzimage_path = kernel.bzimage();
    let vmlinux = dir.join("vmlinux");
    let stamp = format!("{}\n", file_identity(&bzimage_path)?);
    if up_to_date(&vmlinux, &stamp) {
        return Ok(vmlinux);
    }
    let bzimage =
        std::fs::read(&bzimage_path).with_context(|| format!("reading {}", bzimage_path.display()))?;
    let payload =
        bzimage::find_payload(&bzimage).with_context(|| format!("in {}", bzimage_path.display()))?;
    let compressed = dir.join("vmlinux.payload.partial");
    std::fs::write(&compressed, payload.stream(&bzimage))
        .with_context(|| format!("writing {}", compressed.display()))?;
    let elf = decompress_file(payload.compression, &compressed);
    let _ = std::fs::remove_file(&compressed);
    let elf = elf?;
    if elf.len() != payload.decompressed_size as usize {
        bail!(
            "decompressing the {:?} kernel gave {} bytes; the bzImage records {}",
            payload.compression,
            elf.len(),
            payload.decompressed_size
        );
    }
    bzimage::pvh_entry(&elf)
        .with_context(|| format!("the kernel decompressed from {}", bzimage_path.display()))?;
    write_atomically(&vmlinux, &elf)?;
    write_stamp(&vmlinux, &stamp)?;
    Ok(vmlinux)
}

/// The statically linked echo server, rebuilt when its source changes.
fn echo_server(dir: &Path) -> Result<PathBuf> {
    let source = workspace::root().join(ECHO_SERVER_SOURCE);
    let text = std::fs::read(&source).with_context(|| format!("reading {}", source.display()))?;
    let binary = dir.join("echo_server");
    let stamp = format!("{:016x}\n", content_hash(&text));
    if up_to_date(&binary, &stamp) {
        return Ok(binary);
    }
    let gcc = prereq::program("gcc", "gcc")?;
    prereq::package_file(STATIC_LIBC, "libc6-dev")?;
    let partial = dir.join("echo_server.partial");
    run(Command::new(gcc)
        .args(["-static", "-O2", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&partial)
        .arg(&source))?;
    std::fs::rename(&partial, &binary)?;
    write_stamp(&binary, &stamp)?;
    Ok(binary)
}

/// The guest's `/init`: load `modules` (in order), bring up eth0, start
/// the echo server, print the marker, then keep PID 1 alive (a shell on
/// the console, then sleep).
fn init_script(modules: &[String]) -> String {
    let [a, b, c, d] = netns::GUEST_ADDRESS;
    let guest = format!("{a}.{b}.{c}.{d}");
    let gateway = netns::HOST_ADDRESS.split('/').next().unwrap_or(netns::HOST_ADDRESS);
    let prefix = netns::HOST_ADDRESS.split('/').nth(1).unwrap_or("24");
    format!(
        r#"#!/bin/sh
# /init of Tenfold's Linux reference guest (written by tools/src/linux_guest.rs).
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for module in {modules}; do
    insmod /lib/modules/$module.ko || echo "linux-guest: insmod $module failed"
done
# virtio_net registers eth0 while insmod runs; wait a bounded while anyway.
tries=0
while [ ! -e /sys/class/net/eth0 ] && [ $tries -lt 200 ]; do sleep 0.01; tries=$((tries + 1)); done
ip link set lo up
ip addr add {guest}/{prefix} dev eth0
ip link set eth0 up
ip route add default via {gateway}
if /bin/echo_server; then
    echo "{READY_MARKER} on {guest}:{ECHO_PORT}"
else
    echo "linux-guest: the echo server did not start"
fi
sh
while true; do sleep 3600; done
"#,
        modules = modules.join(" "),
    )
}

/// The initramfs, rewritten only when its bytes change.
fn initramfs(kernel: &UnpackedKernel, echo_server: &Path, dir: &Path) -> Result<PathBuf> {
    let tree = modules::ModuleTree::open(&kernel.modules_dir())?;
    let order = modules::load_order(&MODULE_ROOTS, |name| {
        let elf = tree.elf(name)?;
        let depends = modules::modinfo_field(&elf, "depends")
            .with_context(|| format!("module {name} has no `depends=` in its modinfo"))?;
        Ok(modules::dependency_list(&depends))
    })?;
    let busybox = prereq::package_file(BUSYBOX, BUSYBOX_PACKAGE)?;
    let read = |path: &Path| std::fs::read(path).with_context(|| format!("reading {}", path.display()));

    let mut archive = cpio::CpioWriter::new();
    for directory in ["bin", "dev", "proc", "sys", "lib", "lib/modules"] {
        archive.directory(directory, 0o755);
    }
    // The kernel opens /dev/console for init before devtmpfs is mounted.
    archive.char_device("dev/console", 0o600, 5, 1);
    archive.file("bin/busybox", 0o755, &read(&busybox)?);
    for applet in APPLETS {
        archive.symlink(&format!("bin/{applet}"), "busybox");
    }
    archive.file("bin/echo_server", 0o755, &read(echo_server)?);
    for name in &order {
        archive.file(&format!("lib/modules/{name}.ko"), 0o644, &tree.elf(name)?);
    }
    archive.file("init", 0o755, init_script(&order).as_bytes());
    let bytes = archive.finish();

    let path = dir.join("initramfs.cpio");
    if std::fs::read(&path).ok().as_deref() != Some(bytes.as_slice()) {
        write_atomically(&path, &bytes)?;
    }
    Ok(path)
}

/// The decompressed bytes of `path` (`<tool> -dc < path`, the tool
/// installed on demand).
fn decompress_file(compression: Compression, path: &Path) -> Result<Vec<u8>> {
    let (tool, package) = compression.tool();
    let program = prereq::program(tool, package)?;
    let input = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let output = Command::new(program)
        .arg("-dc")
        .stdin(input)
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("running {tool}"))?;
    if !output.status.success() {
        bail!(
            "`{tool} -dc` on {} failed ({}): {}",
            path.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(output.stdout)
}

/// Runs `command`; its stdout, or an error with its stderr.
fn run(command: &mut Command) -> Result<String> {
    let program = command.get_program().to_string_lossy().into_owned();
    let args: Vec<String> = command.get_args().map(OsStr::to_string_lossy).map(String::from).collect();
    let shown = format!("{program} {}", args.join(" "));
    let output = command.output().with_context(|| format!("running `{shown}`"))?;
    if !output.status.success() {
        bail!("`{shown}` failed ({}): {}", output.status, String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// `path size mtime`: changes when the file is replaced.
fn file_identity(path: &Path) -> Result<String> {
    let metadata = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    let modified = metadata.modified()?.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    Ok(format!("{} {} {}", path.display(), metadata.len(), modified.as_nanos()))
}

fn content_hash(bytes: &[u8]) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut hasher);
    hasher.finish()
}

fn stamp_path(output: &Path) -> PathBuf {
    let mut name = output.file_name().unwrap_or_default().to_os_string();
    name.push(".stamp");
    output.with_file_name(name)
}

/// Whether `output` exists and was built from inputs described by `stamp`.
fn up_to_date(output: &Path, stamp: &str) -> bool {
    output.is_file() && std::fs::read_to_string(stamp_path(output)).is_ok_and(|found| found == stamp)
}

fn write_stamp(output: &Path, stamp: &str) -> Result<()> {
    let path = stamp_path(output);
    std::fs::write(&path, stamp).with_context(|| format!("writing {}", path.display()))
}

/// Writes through a temporary file, so a reader never sees half a file.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut partial = path.as_os_str().to_os_string();
    partial.push(format!(".{}.partial", std::process::id()));
    let partial = PathBuf::from(partial);
    std::fs::write(&partial, bytes).with_context(|| format!("writing {}", partial.display()))?;
    std::fs::rename(&partial, path)
        .with_context(|| format!("renaming {} to {}", partial.display(), path.display()))
}

fn remove_dir_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_dir_all(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            Err(error).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_loads_modules_in_order_configures_the_link_and_marks_readiness() {
        let script = init_script(&["virtio_ring".into(), "virtio".into(), "virtio_net".into()]);
        assert!(script.starts_with("#!/bin/sh\n"));
        assert!(script.contains("for module in virtio_ring virtio virtio_net; do"), "{script}");
        assert!(script.contains("ip addr add 10.0.2.15/24 dev eth0"), "{script}");
        assert!(script.contains("ip route add default via 10.0.2.2\n"), "{script}");
        assert!(script.contains("echo \"linux-guest: echo server ready on 10.0.2.15:7\""), "{script}");
    }

    #[test]
    fn stamps_sit_beside_their_outputs() {
        assert_eq!(
            stamp_path(Path::new("/t/linux-guest/vmlinux")),
            Path::new("/t/linux-guest/vmlinux.stamp")
        );
    }

    #[test]
    fn the_linux_command_shares_the_machine_and_refuses_too_little_memory() {
        let guest = LinuxGuest {
            vmlinux: PathBuf::from("/cache/vmlinux"),
            initramfs: PathBuf::from("/cache/initramfs.cpio"),
            kernel_release: "6.1.0-57-amd64".into(),
        };
        let small = MachineOptions { memory: 64, ..MachineOptions::default() };
        assert!(guest.arguments(&small).unwrap_err().to_string().contains("96 MiB"));
        let options = MachineOptions { accel: crate::accel::Accel::Tcg, ..MachineOptions::default() };
        let arguments = guest.arguments(&options).unwrap();
        let line: Vec<String> = arguments.iter().map(|a| a.to_string_lossy().into_owned()).collect();
        let line = line.join(" ");
        let machine = crate::qemu::machine_profile();
        assert!(
            line.contains(&format!("-readconfig {} -accel tcg -cpu max -m 256 -smp 1", machine.display())),
            "{line}"
        );
        assert!(
            line.contains(&format!(
                "-netdev user,id=net0 -readconfig {}",
                crate::qemu::nic_profile().display()
            )),
            "{line}"
        );
        assert!(line.contains("-kernel /cache/vmlinux -initrd /cache/initramfs.cpio"), "{line}");
        assert!(line.contains(&format!("-append {KERNEL_COMMAND_LINE}")), "{line}");
        assert!(!line.contains("-drive") && !line.contains("-fw_cfg"), "{line}");
    }
}
