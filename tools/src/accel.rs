//! Choosing QEMU's accelerator. KVM is used only where it can really run the
//! guest: `/dev/kvm` must be usable and the CPU must expose hardware
//! virtualisation. Nested paravirtual KVM (`kvm_pvm`, as on these CI
//! machines) exposes `/dev/kvm` but fails on a stock guest, so it counts as
//! unusable.

use std::fs::OpenOptions;
use std::path::Path;

/// QEMU accelerator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Accel {
    Tcg,
    Kvm,
    /// KVM if usable, else TCG.
    Auto,
}

/// What the host offers, gathered once so the decision is testable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostFacts {
    pub dev_kvm_usable: bool,
    pub kvm_pvm_loaded: bool,
    pub cpu_has_vmx_or_svm: bool,
}

impl HostFacts {
    pub fn probe() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        HostFacts {
            dev_kvm_usable: OpenOptions::new().read(true).write(true).open("/dev/kvm").is_ok(),
            kvm_pvm_loaded: Path::new("/sys/module/kvm_pvm").exists(),
            cpu_has_vmx_or_svm: cpuinfo_has_virtualisation(&cpuinfo),
        }
    }

    /// Why KVM cannot run the guest here, or `None` if it can.
    pub fn kvm_unusable_reason(&self) -> Option<&'static str> {
        if !self.dev_kvm_usable {
            Some("/dev/kvm is missing or not accessible")
        } else if self.kvm_pvm_loaded {
            Some("/dev/kvm is nested paravirtual KVM (kvm_pvm), which cannot run a stock guest")
        } else if !self.cpu_has_vmx_or_svm {
            Some("the CPU exposes neither vmx nor svm")
        } else {
            None
        }
    }
}

fn cpuinfo_has_virtualisation(cpuinfo: &str) -> bool {
    cpuinfo
        .lines()
        .filter(|line| line.starts_with("flags"))
        .any(|line| line.split_whitespace().any(|flag| flag == "vmx" || flag == "svm"))
}

/// Resolves `requested` to TCG or KVM; asking for KVM where it cannot work is
/// an error with the reason.
pub fn resolve(requested: Accel, host: &HostFacts) -> Result<Accel, String> {
    match (requested, host.kvm_unusable_reason()) {
        (Accel::Tcg, _) => Ok(Accel::Tcg),
        (Accel::Kvm | Accel::Auto, None) => Ok(Accel::Kvm),
        (Accel::Auto, Some(_)) => Ok(Accel::Tcg),
        (Accel::Kvm, Some(reason)) => Err(format!("--accel kvm: {reason}; use --accel tcg or auto")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REAL_HOST: HostFacts =
        HostFacts { dev_kvm_usable: true, kvm_pvm_loaded: false, cpu_has_vmx_or_svm: true };

    #[test]
    fn auto_picks_kvm_on_a_real_host() {
        assert_eq!(resolve(Accel::Auto, &REAL_HOST), Ok(Accel::Kvm));
    }

    #[test]
    fn auto_picks_tcg_under_nested_pvm() {
        let pvm = HostFacts { kvm_pvm_loaded: true, cpu_has_vmx_or_svm: false, ..REAL_HOST };
        assert_eq!(resolve(Accel::Auto, &pvm), Ok(Accel::Tcg));
        let error = resolve(Accel::Kvm, &pvm).unwrap_err();
        assert!(error.contains("kvm_pvm"), "{error}");
    }

    #[test]
    fn tcg_is_always_available() {
        let none = HostFacts { dev_kvm_usable: false, kvm_pvm_loaded: false, cpu_has_vmx_or_svm: false };
        assert_eq!(resolve(Accel::Tcg, &none), Ok(Accel::Tcg));
        assert!(resolve(Accel::Kvm, &none).unwrap_err().contains("/dev/kvm"));
    }

    #[test]
    fn cpu_flags_are_read_per_word() {
        assert!(cpuinfo_has_virtualisation("flags\t: fpu vmx sse\n"));
        assert!(!cpuinfo_has_virtualisation("flags\t: fpu vmxnet sse\n"));
        assert!(!cpuinfo_has_virtualisation("model name : svm cpu\n"));
    }
}
