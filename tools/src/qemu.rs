//! Launching Tenfold in QEMU and talking to its serial console.
//!
//! One function builds the QEMU command line from [`MachineOptions`], so
//! `cargo run`, `cargo lab boot-time`, the demos and the integration tests
//! boot the same machine. [`Guest`] is the handle automated callers use: the
//! console arrives as timestamped lines, every wait has a deadline, and
//! dropping the handle kills QEMU.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::accel::{self, Accel, HostFacts};
use crate::image::{BootImage, Firmware};
use crate::options::{MachineOptions, Network};
use crate::prereq;
use crate::symbolize::Symbolizer;

/// The guest's TCP echo port.
pub const ECHO_PORT: u16 = 7;
/// fw_cfg file the kernel reads its command line from.
pub const CMDLINE_FW_CFG: &str = "opt/tenfold/cmdline";
/// gdb stub address with `--gdb`.
pub const GDB_ADDRESS: &str = "127.0.0.1:1234";

/// How a QEMU run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestExit {
    /// The kernel wrote "success" to isa-debug-exit (status 33).
    Success,
    /// The kernel reported a failure: test failure, fault, panic (status 35).
    Failure,
    /// Status 0: the guest reset or triple-faulted (`-no-reboot`), or QEMU
    /// was asked to quit (Ctrl-C).
    Reset,
    /// Any other status (a QEMU error).
    Other(i32),
    /// QEMU died of a signal.
    Signal,
}

impl GuestExit {
    pub fn from_status(status: ExitStatus) -> Self {
        match status.code() {
            Some(33) => GuestExit::Success,
            Some(35) => GuestExit::Failure,
            Some(0) => GuestExit::Reset,
            Some(code) => GuestExit::Other(code),
            None => GuestExit::Signal,
        }
    }
}

/// A host port on 127.0.0.1 that is free now, for `--port` forwarding.
///
/// Taken below Linux's ephemeral range (32768–60999 by default), not from
/// it: QEMU binds the port a moment after this check, and a port from that
/// range can meanwhile become some client connection's source port (tests
/// open thousands). Each call in a process gets a different port, starting
/// from a place that depends on the process id.
pub fn free_local_port() -> std::io::Result<u16> {
    const FIRST: u32 = 20_000;
    const COUNT: u32 = 12_000;
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let base = std::process::id().wrapping_mul(97);
    for _ in 0..COUNT {
        let offset = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let port = (FIRST + base.wrapping_add(offset) % COUNT) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Err(std::io::Error::new(std::io::ErrorKind::AddrInUse, "no free port in 20000..32000"))
}

/// Escapes a value for QEMU's comma-separated option syntax.
pub fn escape_option_value(value: &str) -> String {
    value.replace(',', ",,")
}

/// The machine profile QEMU reads itself (see the file).
pub fn machine_profile() -> PathBuf {
    crate::workspace::root().join("qemu/tenfold.cfg")
}

/// The network card's profile (attached to the netdev `net0`).
pub fn nic_profile() -> PathBuf {
    crate::workspace::root().join("qemu/virtio-net.cfg")
}

/// The machine every guest runs on — Tenfold and the Linux reference
/// guest ([`crate::linux_guest`]) alike: the profile in qemu/ (PC chipset,
/// exit device), accelerator, memory, CPUs, no default devices and no
/// display, the console on stdio, no reboot, and the virtio-net card on
/// user networking or a tap (or none).
pub fn machine_arguments(options: &MachineOptions, accel: Accel) -> Result<Vec<String>> {
    let mut args: Vec<String> = vec!["-readconfig".into(), machine_profile().to_string_lossy().into_owned()];
    match accel {
        Accel::Kvm => args.extend(["-accel", "kvm", "-cpu", "host"].map(String::from)),
        _ => args.extend(["-accel", "tcg", "-cpu", "max"].map(String::from)),
    }
    args.extend(["-m".into(), options.memory.to_string(), "-smp".into(), options.smp.to_string()]);
    args.extend(["-nodefaults", "-display", "none", "-serial", "stdio", "-no-reboot"].map(String::from));
    let netdev = match (options.network(), options.port) {
        (Network::User, port) => {
            let mut netdev = "user,id=net0".to_string();
            let echo = port.map(|port| (port, ECHO_PORT));
            for (host, guest) in echo.iter().chain(&options.forwards) {
                netdev.push_str(&format!(",hostfwd=tcp:127.0.0.1:{host}-:{guest}"));
            }
            Some(netdev)
        }
        // vhost=off: no vhost-net on every host; the tap exists beforehand,
        // so no ifup/ifdown scripts.
        (Network::Tap { ifname, .. }, None) => Some(format!(
            "tap,id=net0,ifname={},script=no,downscript=no,vhost=off",
            escape_option_value(&ifname)
        )),
        (Network::None, None) => None,
        (_, Some(port)) => {
            bail!("--port {port} forwards over user networking, which this guest does not use")
        }
    };
    if let Some(netdev) = netdev {
        args.extend([
            "-netdev".into(),
            netdev,
            "-readconfig".into(),
            nic_profile().to_string_lossy().into_owned(),
        ]);
    }
    Ok(args)
}

/// The full QEMU argument list for `boot` under `options` (with the
/// accelerator already resolved).
pub fn arguments(boot: &BootImage, options: &MachineOptions, accel: Accel) -> Result<Vec<OsString>> {
    let mut args: Vec<OsString> =
        machine_arguments(options, accel)?.into_iter().map(OsString::from).collect();
    let mut push = |items: &[&str]| args.extend(items.iter().map(OsString::from));
    let cmdline = options.cmdline();
    match boot.firmware {
        Firmware::Pvh => {
            // QEMU loads the ELF's segments itself and enters its PVH note.
            push(&["-kernel", &boot.image.to_string_lossy()]);
            // The user programs arrive as the PVH start info's first module.
            if let Some(initrd) = &boot.initrd {
                push(&["-initrd", &initrd.to_string_lossy()]);
            }
            if !cmdline.is_empty() {
                push(&["-append", &cmdline]);
            }
        }
        Firmware::Bios | Firmware::Uefi => {
            // The bootloader's BIOS stage needs VBE, so a VGA card stays
            // (nothing displays it). virtio-blk: SeaBIOS reads it by DMA,
            // about 2 s faster than IDE PIO under TCG. snapshot=on lets
            // several QEMUs share one image.
            push(&["-vga", "std"]);
            let drive = format!(
                "file={},format=raw,if=virtio,snapshot=on",
                escape_option_value(&boot.image.to_string_lossy())
            );
            push(&["-drive", &drive]);
            if boot.firmware == Firmware::Uefi {
                let ovmf = prereq::ovmf()?;
                push(&["-bios", &ovmf.to_string_lossy()]);
            }
            // These images carry no command line: the kernel reads fw_cfg.
            if !cmdline.is_empty() {
                let fw_cfg = format!("name={CMDLINE_FW_CFG},string={}", escape_option_value(&cmdline));
                push(&["-fw_cfg", &fw_cfg]);
            }
        }
    }
    if options.gdb {
        push(&["-gdb", &format!("tcp:{GDB_ADDRESS}"), "-S"]);
    }
    Ok(args)
}

/// The program to start and the arguments that precede QEMU's own: QEMU
/// itself, or for a tap in a network namespace `ip netns exec <ns> <qemu>`
/// (`ip` execs QEMU in place, so the child's pid is QEMU's and killing the
/// child kills QEMU).
pub fn launcher(network: &Network, qemu: PathBuf) -> Result<(PathBuf, Vec<OsString>)> {
    Ok(match network {
        Network::Tap { netns: Some(netns), .. } => {
            let ip =
                crate::netns::ip_program().context("`ip` (iproute2) is needed to run QEMU in a namespace")?;
            (ip, vec!["netns".into(), "exec".into(), netns.into(), qemu.into()])
        }
        _ => (qemu, Vec::new()),
    })
}

/// Resolves the accelerator and builds the QEMU command.
pub fn command(boot: &BootImage, options: &MachineOptions) -> Result<(Command, Accel)> {
    let accel = accel::resolve(options.accel, &HostFacts::probe()).map_err(anyhow::Error::msg)?;
    let (program, prefix) = launcher(&options.network(), prereq::qemu()?)?;
    let mut command = Command::new(program);
    command.args(prefix).args(arguments(boot, options, accel)?);
    Ok((command, accel))
}

/// gdb's arguments to attach to a `--gdb` guest with the kernel's symbols
/// (the kernel is linked at the addresses it runs at).
pub fn gdb_arguments(kernel_elf: &std::path::Path) -> Vec<String> {
    let symbols = format!("file {}", kernel_elf.display());
    let remote = format!("target remote {GDB_ADDRESS}");
    ["-q", "-ex", "set confirm off", "-ex", &symbols, "-ex", &remote].map(String::from).to_vec()
}

/// The gdb command line to print for the user.
pub fn gdb_command(kernel_elf: &std::path::Path) -> String {
    let quoted = gdb_arguments(kernel_elf)
        .into_iter()
        .map(|arg| if arg.contains(' ') { format!("'{arg}'") } else { arg })
        .collect::<Vec<_>>();
    format!("gdb {}", quoted.join(" "))
}

/// Boots interactively: the console on this terminal (stack traces
/// symbolised as they pass), Ctrl-C ends QEMU and then the runner.
pub fn run_interactive(boot: &BootImage, options: &MachineOptions) -> Result<GuestExit> {
    let (mut command, accel) = command(boot, options)?;
    eprintln!(
        "lab: booting {} ({:?}, {} vCPU, {} MiB{}); Ctrl-C quits",
        boot.image.display(),
        accel,
        options.smp,
        options.memory,
        match (options.network(), options.port) {
            (Network::Tap { netns: Some(netns), ifname }, _) =>
                format!(", {ifname} in network namespace {netns}"),
            (Network::Tap { netns: None, ifname }, _) => format!(", NIC on tap {ifname}"),
            (Network::User, Some(p)) => format!(", echo on 127.0.0.1:{p}"),
            (Network::User, None) => ", user networking".to_string(),
            (Network::None, _) => ", no network card".to_string(),
        }
    );
    if options.gdb {
        eprintln!(
            "lab: QEMU waits for gdb on {GDB_ADDRESS}; attach with:\n    {}\n\
             lab: use `hbreak` for breakpoints set before the kernel is loaded",
            gdb_command(&boot.kernel_elf)
        );
    }
    // SIGINT reaches QEMU too (same process group); we only wait for it.
    ctrlc::set_handler(|| {}).context("installing the Ctrl-C handler")?;
    let symbolizer = Symbolizer::new(&boot.kernel_elf).ok();
    let mut child = command.stdout(Stdio::piped()).spawn().context("starting QEMU")?;
    let stdout = child.stdout.take().expect("piped stdout");
    let forward = std::thread::spawn(move || forward_console(stdout, symbolizer.as_ref()));
    let status = child.wait()?;
    let _ = forward.join();
    Ok(GuestExit::from_status(status))
}

/// Copies console bytes to our stdout as they come (the shell's prompt has no
/// newline) and appends symbols under complete stack-trace lines.
fn forward_console(mut from: impl Read, symbolizer: Option<&Symbolizer>) {
    let mut out = std::io::stdout();
    let mut line = Vec::new();
    let mut buffer = [0u8; 4096];
    while let Ok(count) = from.read(&mut buffer) {
        if count == 0 {
            break;
        }
        let mut rest = &buffer[..count];
        // Write through each newline, then the symbols for the line it ends.
        while let Some(newline) = rest.iter().position(|&byte| byte == b'\n') {
            let (head, tail) = rest.split_at(newline + 1);
            let _ = out.write_all(head);
            line.extend_from_slice(&head[..newline]);
            if let Some(symbolizer) = symbolizer {
                for extra in symbolizer.annotate(&String::from_utf8_lossy(&line)) {
                    let _ = write!(out, "{extra}\r\n");
                }
            }
            line.clear();
            rest = tail;
        }
        let _ = out.write_all(rest);
        line.extend_from_slice(rest);
        let _ = out.flush();
    }
}

/// One console line and when it arrived (since QEMU was started).
#[derive(Clone, Debug)]
pub struct Line {
    pub at: Duration,
    pub text: String,
}

/// A running guest under program control.
pub struct Guest {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<Line>,
    transcript: Vec<Line>,
    /// Index of the first transcript line [`Guest::wait_for_new`] has not
    /// passed over yet.
    unseen: usize,
    symbolizer: Option<Symbolizer>,
    pub started: Instant,
}

/// CPU time (user + system) the process `pid` has used so far, from
/// `/proc/<pid>/stat`; `None` if it cannot be read.
pub fn process_cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold
    // spaces: state is field 3, utime 14 and stime 15.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (per_second > 0).then(|| Duration::from_secs_f64(ticks as f64 / per_second as f64))
}

impl Guest {
    /// Starts QEMU with the console (and QEMU's own stderr) captured.
    pub fn spawn(boot: &BootImage, options: &MachineOptions) -> Result<Guest> {
        let (command, _) = command(boot, options)?;
        let mut guest = Guest::spawn_command(command)?;
        guest.symbolizer = Symbolizer::new(&boot.kernel_elf).ok();
        Ok(guest)
    }

    /// Starts a QEMU command built elsewhere (e.g. by
    /// [`crate::linux_guest`]) with the console captured, as [`Guest::spawn`]
    /// does; console lines are not symbolised.
    pub fn spawn_command(mut command: Command) -> Result<Guest> {
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let started = Instant::now();
        let mut child = command.spawn().context("starting QEMU")?;
        let (sender, lines) = mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().expect("piped")) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().expect("piped")),
        ] {
            let sender = sender.clone();
            std::thread::spawn(move || {
                for text in BufReader::new(stream).split(b'\n').map_while(|line| line.ok()) {
                    let text = String::from_utf8_lossy(&text).trim_end_matches('\r').to_string();
                    if sender.send(Line { at: started.elapsed(), text }).is_err() {
                        break;
                    }
                }
            });
        }
        Ok(Guest {
            stdin: child.stdin.take(),
            child,
            lines,
            transcript: Vec::new(),
            unseen: 0,
            symbolizer: None,
            started,
        })
    }

    /// Waits for a console line containing `needle` (one already seen counts).
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> Result<Line> {
        if let Some(line) = self.transcript.iter().find(|line| line.text.contains(needle)) {
            return Ok(line.clone());
        }
        self.wait_for_new(needle, timeout)
    }

    /// Waits for a console line containing `needle` that no earlier
    /// `wait_for_new` has passed over (lines before the one it returns count
    /// as passed over).
    pub fn wait_for_new(&mut self, needle: &str, timeout: Duration) -> Result<Line> {
        if let Some(offset) =
            self.transcript[self.unseen..].iter().position(|line| line.text.contains(needle))
        {
            self.unseen += offset + 1;
            return Ok(self.transcript[self.unseen - 1].clone());
        }
        self.unseen = self.transcript.len();
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.transcript.push(line.clone());
                    self.unseen = self.transcript.len();
                    if line.text.contains(needle) {
                        return Ok(line);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    bail!("no `{needle}` on the console within {timeout:?}; console:\n{}", self.transcript())
                }
                Err(RecvTimeoutError::Disconnected) => {
                    bail!("QEMU exited before `{needle}` appeared; console:\n{}", self.transcript())
                }
            }
        }
    }

    /// Runs `program argument` from the guest's shell and returns its task
    /// id. The task may print before the shell's `started` line does, so
    /// every line after the command counts as new again for the next
    /// [`Guest::wait_for_new`].
    pub fn run_task(&mut self, program: &str, argument: &str) -> Result<u64> {
        self.unseen = self.transcript.len();
        let command_sent = self.unseen;
        self.send(&format!("run {program} {argument}\r"))?;
        let line = self.wait_for_new(&format!("started `{program}` as task"), Duration::from_secs(30))?;
        self.unseen = command_sent;
        let id = line.text.rsplit("as task").next().unwrap_or_default();
        let digits: String = id.trim_start().chars().take_while(char::is_ascii_digit).collect();
        digits.parse().with_context(|| format!("no task id in `{}`", line.text))
    }

    /// Waits for QEMU to exit, collecting the rest of the console.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<GuestExit> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                // Collect what the reader threads still hold.
                while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
                    self.transcript.push(line);
                }
                return Ok(GuestExit::from_status(status));
            }
            if Instant::now() >= deadline {
                bail!("QEMU still running after {timeout:?}; console:\n{}", self.transcript());
            }
            match self.lines.recv_timeout(Duration::from_millis(50)) {
                Ok(line) => self.transcript.push(line),
                Err(_) => continue,
            }
        }
    }

    /// Sends text to the guest's serial console.
    pub fn send(&mut self, text: &str) -> Result<()> {
        let stdin = self.stdin.as_mut().context("console input closed")?;
        stdin.write_all(text.as_bytes())?;
        stdin.flush()?;
        Ok(())
    }

    /// Everything the console printed so far, stack traces symbolised.
    pub fn transcript(&self) -> String {
        let mut out = String::new();
        for line in &self.transcript {
            out.push_str(&line.text);
            out.push('\n');
            if let Some(symbolizer) = &self.symbolizer {
                for extra in symbolizer.annotate(&line.text) {
                    out.push_str(&extra);
                    out.push('\n');
                }
            }
        }
        out
    }

    /// QEMU's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops QEMU now.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A stand-in for the guest's shell: on `run`, the task's own line
    /// comes out before the shell's `started` line, as it can in the guest.
    fn fake_shell() -> Guest {
        // The console ends a command with a carriage return, not a newline.
        let mut command = Command::new("bash");
        command.arg("-c").arg(
            "echo 'old: ready 1'; read -r -d $'\\r' _; echo 'old: ready 2'; \
             echo 'started `old` as task 7'; sleep 2",
        );
        Guest::spawn_command(command).unwrap()
    }

    #[test]
    fn free_local_ports_are_distinct_and_outside_the_ephemeral_range() {
        let ports: Vec<u16> = (0..50).map(|_| free_local_port().unwrap()).collect();
        assert!(ports.iter().all(|port| (20_000..32_000).contains(port)), "{ports:?}");
        let mut unique = ports.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ports.len(), "{ports:?}");
    }

    #[test]
    fn a_task_line_printed_before_the_shells_started_line_still_counts_as_new() {
        let mut guest = fake_shell();
        guest.wait_for_new("ready 1", Duration::from_secs(10)).unwrap();
        assert_eq!(guest.run_task("old", "x").unwrap(), 7);
        let line = guest.wait_for_new("old: ready", Duration::from_secs(10)).unwrap();
        assert_eq!(line.text, "old: ready 2", "a line from before the command counted as new");
        assert!(guest.wait_for_new("old: ready", Duration::from_millis(300)).is_err());
        guest.kill();
    }

    fn image(firmware: Firmware) -> BootImage {
        BootImage {
            image: PathBuf::from("/tmp/a,b.img"),
            kernel_elf: PathBuf::from("/tmp/k"),
            firmware,
            initrd: None,
        }
    }

    fn joined_for(firmware: Firmware, options: &MachineOptions) -> String {
        arguments(&image(firmware), options, Accel::Tcg)
            .unwrap()
            .iter()
            .map(|arg| arg.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn joined(options: &MachineOptions) -> String {
        joined_for(Firmware::Pvh, options)
    }

    #[test]
    fn port_forwards_to_the_echo_port_on_loopback_only() {
        let options = MachineOptions { port: Some(17777), ..MachineOptions::default() };
        assert!(joined(&options).contains("hostfwd=tcp:127.0.0.1:17777-:7"));
    }

    #[test]
    fn the_machine_comes_from_the_profiles_qemu_reads() {
        let line = joined(&MachineOptions::default());
        let machine = machine_profile();
        assert!(line.starts_with(&format!("-readconfig {}", machine.display())), "{line}");
        assert!(line.contains(&format!("-readconfig {}", nic_profile().display())), "{line}");
        let profile = std::fs::read_to_string(&machine).unwrap();
        assert!(profile.contains("isa-debug-exit") && profile.contains("type = \"pc\""), "{profile}");
        let nic = std::fs::read_to_string(nic_profile()).unwrap();
        assert!(nic.contains("virtio-net-pci") && nic.contains("netdev = \"net0\""), "{nic}");
    }

    #[test]
    fn pvh_boots_the_elf_with_the_command_line_appended() {
        let options = MachineOptions::default().with_param("log=debug").with_param("x=a,b");
        let line = joined(&options);
        assert!(line.contains("-kernel /tmp/a,b.img -append log=debug x=a,b"), "{line}");
        assert!(!line.contains("-drive") && !line.contains("-vga") && !line.contains("-fw_cfg"), "{line}");
        assert!(!joined(&MachineOptions::default()).contains("-append"));
    }

    #[test]
    fn tap_uses_the_named_device_with_the_same_card() {
        let options = MachineOptions::default().on_tap_in("tenfold-1-0", "tap0");
        let line = joined(&options);
        assert!(
            line.contains("-netdev tap,id=net0,ifname=tap0,script=no,downscript=no,vhost=off "),
            "{line}"
        );
        assert!(!line.contains("user,") && !line.contains("hostfwd"), "{line}");
        assert!(joined(&MachineOptions::default()).contains("-netdev user,id=net0 "));
        // A port forward makes no sense on a tap.
        let both = MachineOptions { port: Some(1), ..options.clone() };
        assert!(arguments(&image(Firmware::Pvh), &both, Accel::Tcg).is_err());
        // QEMU starts inside the namespace, through `ip netns exec`.
        let qemu = PathBuf::from("/usr/bin/qemu-system-x86_64");
        if crate::netns::ip_program().is_some() {
            let (program, prefix) = launcher(&options.network(), qemu.clone()).unwrap();
            assert!(program.ends_with("ip"), "{program:?}");
            assert_eq!(prefix, ["netns", "exec", "tenfold-1-0", "/usr/bin/qemu-system-x86_64"]);
        }
        // A user's own tap (--tap) is used where QEMU runs.
        let own = MachineOptions { tap: Some("tap9".into()), ..MachineOptions::default() };
        let (program, prefix) = launcher(&own.network(), qemu.clone()).unwrap();
        assert_eq!((program, prefix.len()), (qemu.clone(), 0));
        assert!(joined(&own).contains("ifname=tap9"));
        let (program, prefix) = launcher(&Network::User, qemu.clone()).unwrap();
        assert_eq!((program, prefix.len()), (qemu, 0));
    }

    #[test]
    fn no_network_means_no_card() {
        let options =
            MachineOptions { net: Some(crate::options::NoNetwork::None), ..MachineOptions::default() };
        let line = joined(&options);
        assert!(!line.contains("-netdev") && !line.contains("virtio-net"), "{line}");
    }

    #[test]
    fn bootloader_images_take_parameters_by_fw_cfg_with_commas_escaped() {
        let options = MachineOptions::default().with_param("log=debug").with_param("x=a,b");
        let line = joined_for(Firmware::Bios, &options);
        assert!(line.contains("-fw_cfg name=opt/tenfold/cmdline,string=log=debug x=a,,b"), "{line}");
        assert!(line.contains("file=/tmp/a,,b.img") && line.contains("-vga std"), "{line}");
        assert!(!line.contains("-kernel"), "{line}");
        assert!(!joined_for(Firmware::Bios, &MachineOptions::default()).contains("-fw_cfg"));
    }

    #[test]
    fn machine_shape_follows_options() {
        let options = MachineOptions { smp: 2, memory: 512, gdb: true, ..MachineOptions::default() };
        for firmware in [Firmware::Pvh, Firmware::Bios] {
            let line = joined_for(firmware, &options);
            assert!(line.contains("-m 512 -smp 2"), "{line}");
            assert!(line.contains("-gdb tcp:127.0.0.1:1234 -S"), "{line}");
            assert!(line.contains("-accel tcg"), "{line}");
            assert!(line.contains("-no-reboot"), "{line}");
        }
    }

    #[test]
    fn exit_statuses_map_to_outcomes() {
        use std::os::unix::process::ExitStatusExt;
        let status = |code: i32| ExitStatus::from_raw(code << 8);
        assert_eq!(GuestExit::from_status(status(33)), GuestExit::Success);
        assert_eq!(GuestExit::from_status(status(35)), GuestExit::Failure);
        assert_eq!(GuestExit::from_status(status(0)), GuestExit::Reset);
        assert_eq!(GuestExit::from_status(status(1)), GuestExit::Other(1));
        assert_eq!(GuestExit::from_status(ExitStatus::from_raw(9)), GuestExit::Signal);
    }
}
