//! Which execution context is running, for logs and fault reports. Until the
//! scheduler exists there is exactly one: the boot thread on the boot stack.

/// The name fault reports and panics use for the running context.
pub fn current_name() -> &'static str {
    "kernel thread `boot`"
}
