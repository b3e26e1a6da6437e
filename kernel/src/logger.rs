//! The `log` facade, printed to the console as
//! `[seconds.micros] LEVEL target: message`. The level can be changed at run
//! time (`log=` kernel parameter, later the shell's `log` command).

use log::{LevelFilter, Log, Metadata, Record};

use crate::{console, time};

struct SerialLogger;

static LOGGER: SerialLogger = SerialLogger;

impl Log for SerialLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let uptime = time::since_entry();
        let target = record.target();
        let target = target.strip_prefix("tenfold::").unwrap_or(target);
        console::write_fmt(format_args!(
            "[{:>5}.{:06}] {:<5} {}: {}\n",
            uptime.as_secs(),
            uptime.subsec_micros(),
            record.level(),
            target,
            record.args()
        ));
    }

    fn flush(&self) {}
}

pub fn init() {
    // Ignoring the error: set_logger fails only if called twice.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(LevelFilter::Info);
}

pub fn set_level(level: LevelFilter) {
    log::set_max_level(level);
}
