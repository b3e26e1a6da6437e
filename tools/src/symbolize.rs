//! Symbolising the kernel's stack traces on the host. Fault and panic
//! reports print return addresses as lines `#N 0x…`; the kernel is linked
//! at the addresses it runs at (kernel/linker.ld), so `addr2line` resolves
//! them in the unstripped ELF to functions and lines (inlined frames
//! included).

use std::path::Path;

use anyhow::Result;

/// Resolves kernel addresses with the unstripped ELF.
pub struct Symbolizer {
    loader: addr2line::Loader,
}

impl Symbolizer {
    pub fn new(kernel_elf: &Path) -> Result<Self> {
        let loader = addr2line::Loader::new(kernel_elf)
            .map_err(|error| anyhow::anyhow!("reading symbols from {}: {error}", kernel_elf.display()))?;
        Ok(Symbolizer { loader })
    }

    /// For a stack-trace line (`#N 0x…`), the lines to print under it:
    /// `in function at file:line`, one per (inlined) frame.
    pub fn annotate(&self, line: &str) -> Vec<String> {
        let Some(address) = trace_address(line) else { return Vec::new() };
        let probe = address;
        let mut out = Vec::new();
        if let Ok(mut frames) = self.loader.find_frames(probe) {
            while let Ok(Some(frame)) = frames.next() {
                let function = frame
                    .function
                    .as_ref()
                    .and_then(|name| name.demangle().ok().map(|name| strip_hash(&name).to_string()))
                    .unwrap_or_else(|| "??".into());
                let location = frame
                    .location
                    .map(|location| {
                        format!("{}:{}", shorten(location.file.unwrap_or("??")), location.line.unwrap_or(0))
                    })
                    .unwrap_or_else(|| "??".into());
                out.push(format!("           in {function} at {location}"));
            }
        }
        if out.is_empty()
            && let Some(symbol) = self.loader.find_symbol(probe)
        {
            out.push(format!("           in {}", addr2line::demangle_auto(symbol.into(), None)));
        }
        out
    }
}

/// The address in a stack-trace line `#N 0x…`.
pub fn trace_address(line: &str) -> Option<u64> {
    let rest = line.trim_start().strip_prefix('#')?;
    let (depth, rest) = rest.split_once(' ')?;
    depth.parse::<u32>().ok()?;
    let hex = rest.trim().strip_prefix("0x")?;
    u64::from_str_radix(hex.split_whitespace().next()?, 16).ok()
}

/// Drops the `::h0123…` hash rustc appends to symbol names.
fn strip_hash(name: &str) -> &str {
    match name.rsplit_once("::h") {
        Some((head, hash)) if hash.len() == 16 && hash.chars().all(|c| c.is_ascii_hexdigit()) => head,
        _ => name,
    }
}

/// Paths relative to the repository, the Rust library or the crate
/// registry where possible.
fn shorten(path: &str) -> String {
    let root = crate::workspace::root();
    if let Some(relative) = path.strip_prefix(root.to_string_lossy().as_ref()) {
        return relative.trim_start_matches('/').to_string();
    }
    for marker in ["/rustlib/src/rust/", "/registry/src/"] {
        if let Some((_, after)) = path.split_once(marker) {
            // For the registry, drop the index directory too.
            let after = if marker == "/registry/src/" {
                after.split_once('/').map_or(after, |(_, a)| a)
            } else {
                after
            };
            return after.to_string();
        }
    }
    path.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_trace_lines_only() {
        assert_eq!(trace_address("      #0 0xffffffff80012345"), Some(0xffff_ffff_8001_2345));
        assert_eq!(trace_address("#12 0x0000000000001000"), Some(0x1000));
        assert_eq!(trace_address("    rip 0xffffffff80012345"), None);
        assert_eq!(trace_address("#x 0x10"), None);
        assert_eq!(trace_address("# 0x10"), None);
    }

    #[test]
    fn strips_rustc_hashes() {
        assert_eq!(strip_hash("tenfold::selftest::crash::h0123456789abcdef"), "tenfold::selftest::crash");
        assert_eq!(strip_hash("a::hello"), "a::hello");
    }
}
