//! Keep the agent out of the host's way: lower CPU and IO priority, and an
//! allocator tuned for its load. Applied once at start, to the whole process
//! (threads started later inherit it).

/// Sets the process's niceness (0–19; higher is nicer).
#[allow(unsafe_code)]
pub fn set_nice(nice: i32) -> std::io::Result<()> {
    let nice = nice.clamp(-20, 19);
    // SAFETY: setpriority takes plain integers and touches no memory.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Puts the process in the idle IO scheduling class: it only gets disk time
/// nobody else wants.
#[allow(unsafe_code)]
pub fn set_io_idle() -> std::io::Result<()> {
    const IOPRIO_WHO_PROCESS: libc::c_long = 1;
    const IOPRIO_CLASS_IDLE: libc::c_long = 3;
    const IOPRIO_CLASS_SHIFT: libc::c_long = 13;
    // SAFETY: ioprio_set takes plain integers and touches no memory.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_ioprio_set,
            IOPRIO_WHO_PROCESS,
            0 as libc::c_long,
            IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Applies the configured limits, warning about (not failing on) what the
/// host does not allow.
pub fn apply(limits: &sluice_core::config::LimitsConfig) {
    if let Some(nice) = limits.nice
        && let Err(err) = set_nice(nice)
    {
        tracing::warn!(error = %err, nice, "cannot lower cpu priority");
    }
    if limits.io_idle
        && let Err(err) = set_io_idle()
    {
        tracing::warn!(error = %err, "cannot set idle io priority");
    }
}

/// Tunes glibc's allocator for the agent's pattern: spool entries of a few
/// hundred KiB built and freed many times a second. By default glibc returns
/// such memory to the kernel on every free and faults it back in on the next
/// allocation, which cost about a third of the agent's CPU at full speed.
/// Keeping up to 16 MiB of free heap, serving blocks under 4 MiB from the
/// heap, and using two arenas (one per busy thread, not one per core) trades a
/// few MiB of resident memory for that CPU. A no-op on other C libraries.
#[allow(unsafe_code)]
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt takes plain integers and only changes allocator
        // parameters; it is called before the agent's threads start.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
            libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 16 << 20);
        }
    }
}
