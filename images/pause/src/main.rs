//! `pause`: the process that holds a pod sandbox's namespaces.
//!
//! It runs as PID 1 of the pod. It does nothing but wait: it reaps any zombie
//! re-parented to it (SIGCHLD) and exits 0 on SIGTERM or SIGINT. The signals are
//! blocked and taken with `sigwait`, which works for PID 1 too: the kernel only
//! drops signals to an init process whose disposition is the default, never
//! blocked ones. Built statically (`crt-static`) so the image needs no libc.

use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

fn main() {
    let mut signals = SigSet::empty();
    for signal in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGCHLD] {
        signals.add(signal);
    }
    if let Err(err) = signals.thread_block() {
        eprintln!("pause: cannot block signals: {err}");
        std::process::exit(1);
    }
    loop {
        match signals.wait() {
            Ok(Signal::SIGCHLD) => reap_children(),
            Ok(Signal::SIGTERM | Signal::SIGINT) => std::process::exit(0),
            Ok(_) => {}
            Err(err) => {
                eprintln!("pause: sigwait failed: {err}");
                std::process::exit(2);
            }
        }
    }
}

/// Reaps every child that has exited; several may share one SIGCHLD.
fn reap_children() {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(_) => continue,
        }
    }
}
