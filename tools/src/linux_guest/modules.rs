//! Kernel modules from the extracted package: where a module's file is
//! (from `modules.order`), what it depends on (the `depends=` entry of its
//! `.modinfo`, what `modinfo -F depends` prints), and the order to insmod
//! a set of modules so that every dependency comes first.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::bzimage::Compression;

/// Suffixes a module file may have; compressed ones are decompressed on
/// the host (busybox insmod reads plain ELF only).
const MODULE_SUFFIXES: [(&str, Option<Compression>); 4] = [
    (".ko", None),
    (".ko.xz", Some(Compression::Xz)),
    (".ko.zst", Some(Compression::Zstd)),
    (".ko.gz", Some(Compression::Gzip)),
];

/// A module's name as the kernel knows it: the file name without its
/// suffix, dashes as underscores.
pub fn module_name(file_name: &str) -> Option<String> {
    MODULE_SUFFIXES
        .iter()
        .find_map(|(suffix, _)| file_name.strip_suffix(suffix))
        .map(|stem| stem.replace('-', "_"))
}

/// The modules of one kernel release, by name.
pub struct ModuleTree {
    files: BTreeMap<String, PathBuf>,
}

impl ModuleTree {
    /// Reads `modules.order` in `release_dir` (`…/lib/modules/<release>`).
    pub fn open(release_dir: &Path) -> Result<ModuleTree> {
        let order_file = release_dir.join("modules.order");
        let order = std::fs::read_to_string(&order_file)
            .with_context(|| format!("reading {}", order_file.display()))?;
        let mut files = BTreeMap::new();
        for listed in order.lines().map(str::trim).filter(|line| !line.is_empty()) {
            // The list names `.ko` files; the package may ship them compressed.
            let stem = listed.strip_suffix(".ko").unwrap_or(listed);
            let found = MODULE_SUFFIXES
                .iter()
                .map(|(suffix, _)| release_dir.join(format!("{stem}{suffix}")))
                .find(|path| path.is_file());
            let name = Path::new(listed).file_name().and_then(|n| module_name(&n.to_string_lossy()));
            if let (Some(name), Some(path)) = (name, found) {
                files.insert(name, path);
            }
        }
        Ok(ModuleTree { files })
    }

    /// The module's file in the package.
    pub fn path(&self, name: &str) -> Result<&Path> {
        self.files
            .get(name)
            .map(PathBuf::as_path)
            .with_context(|| format!("no module `{name}` in the kernel package"))
    }

    /// The module as a plain ELF object, decompressed if it is shipped
    /// compressed.
    pub fn elf(&self, name: &str) -> Result<Vec<u8>> {
        let path = self.path(name)?;
        let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let compression = MODULE_SUFFIXES
            .iter()
            .find(|(suffix, _)| file_name.ends_with(suffix))
            .and_then(|(_, compression)| *compression);
        match compression {
            None => std::fs::read(path).with_context(|| format!("reading {}", path.display())),
            Some(compression) => super::decompress_file(compression, path),
        }
    }
}

/// The value of `key` in a module's `.modinfo` strings (`key=value\0`).
pub fn modinfo_field(module: &[u8], key: &str) -> Option<String> {
    let needle = format!("\0{key}=");
    let start = module.windows(needle.len()).position(|window| window == needle.as_bytes())? + needle.len();
    let length = module[start..].iter().position(|&byte| byte == 0)?;
    Some(String::from_utf8_lossy(&module[start..start + length]).into_owned())
}

/// The modules `roots` need, each after everything it depends on
/// (depth-first, dependencies in the order they are listed). `depends`
/// gives a module's direct dependencies.
pub fn load_order(
    roots: &[&str],
    mut depends: impl FnMut(&str) -> Result<Vec<String>>,
) -> Result<Vec<String>> {
    fn visit(
        name: &str,
        depends: &mut dyn FnMut(&str) -> Result<Vec<String>>,
        path: &mut Vec<String>,
        order: &mut Vec<String>,
    ) -> Result<()> {
        if order.iter().any(|done| done == name) {
            return Ok(());
        }
        if path.iter().any(|open| open == name) {
            bail!("module dependency cycle: {} -> {name}", path.join(" -> "));
        }
        path.push(name.to_string());
        for dependency in depends(name)? {
            visit(&dependency, depends, path, order)?;
        }
        path.pop();
        order.push(name.to_string());
        Ok(())
    }
    let mut order = Vec::new();
    for root in roots {
        visit(root, &mut depends, &mut Vec::new(), &mut order)?;
    }
    Ok(order)
}

/// Splits a `depends=` value (`a,b,c`, possibly empty).
pub fn dependency_list(value: &str) -> Vec<String> {
    value.split(',').map(str::trim).filter(|name| !name.is_empty()).map(String::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modinfo_fields_are_read_from_nul_separated_strings() {
        let modinfo =
            b"junk\0license=GPL\0depends=virtio_ring,virtio,net_failover\0intree=Y\0name=virtio_net\0";
        assert_eq!(modinfo_field(modinfo, "depends").unwrap(), "virtio_ring,virtio,net_failover");
        assert_eq!(modinfo_field(modinfo, "name").unwrap(), "virtio_net");
        assert_eq!(modinfo_field(b"\0depends=\0", "depends").unwrap(), "");
        assert_eq!(modinfo_field(modinfo, "vermagic"), None);
        assert_eq!(dependency_list(""), Vec::<String>::new());
        assert_eq!(dependency_list("a,b"), ["a", "b"]);
    }

    #[test]
    fn names_drop_suffixes_and_use_underscores() {
        assert_eq!(module_name("virtio_net.ko").unwrap(), "virtio_net");
        assert_eq!(module_name("virtio-rng.ko.xz").unwrap(), "virtio_rng");
        assert_eq!(module_name("net_failover.ko.zst").unwrap(), "net_failover");
        assert_eq!(module_name("modules.order"), None);
    }

    /// The virtio-net modules of Debian's 6.1 kernel, as modinfo lists them.
    fn debian_6_1(name: &str) -> Result<Vec<String>> {
        let depends = match name {
            "virtio" => "virtio_ring",
            "virtio_pci" => "virtio_ring,virtio_pci_modern_dev,virtio_pci_legacy_dev,virtio",
            "net_failover" => "failover",
            "virtio_net" => "virtio_ring,virtio,net_failover",
            "virtio_ring" | "virtio_pci_modern_dev" | "virtio_pci_legacy_dev" | "failover" => "",
            other => bail!("unknown module {other}"),
        };
        Ok(dependency_list(depends))
    }

    #[test]
    fn dependencies_load_first_and_once() {
        let order = load_order(&["virtio_pci", "virtio_net"], debian_6_1).unwrap();
        assert_eq!(
            order,
            [
                "virtio_ring",
                "virtio_pci_modern_dev",
                "virtio_pci_legacy_dev",
                "virtio",
                "virtio_pci",
                "failover",
                "net_failover",
                "virtio_net"
            ]
        );
        assert!(load_order(&["missing"], debian_6_1).is_err());
    }

    #[test]
    fn a_cycle_is_an_error_not_a_hang() {
        let cyclic = |name: &str| Ok(vec![if name == "a" { "b" } else { "a" }.to_string()]);
        let error = load_order(&["a"], cyclic).unwrap_err();
        assert!(error.to_string().contains("cycle: a -> b -> a"), "{error}");
    }
}
