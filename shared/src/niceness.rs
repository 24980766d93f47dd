//! CPU priority of the inference threads. A batch keeps every core busy for as long as it runs;
//! the threads that answer requests (HTTP, cache hits, tokenizing) need the CPU for moments only,
//! and should never wait for a time slice behind a batch. Inference threads therefore run at a
//! lower priority (a higher nice value): they get all the CPU nobody else wants, and lose almost
//! no throughput, since the request threads use little.
//!
//! Linux keeps the nice value per thread, and a new thread inherits its creator's: ONNX Runtime's
//! intra-op threads, created when the session is built on an inference thread, inherit it too.
//!
//! The one module besides `memory` that needs `unsafe`: one foreign call that takes no pointers.
#![allow(unsafe_code)]

/// The nice value of inference threads (request threads keep 0).
pub const INFERENCE_NICE: i32 = 10;

/// Lowers the calling thread's CPU priority to `nice` (raising it back needs privileges).
#[cfg(target_os = "linux")]
pub fn lower_this_thread(nice: i32) -> std::io::Result<()> {
    unsafe extern "C" {
        fn setpriority(which: std::ffi::c_int, who: std::ffi::c_uint, prio: std::ffi::c_int) -> std::ffi::c_int;
    }
    const PRIO_PROCESS: std::ffi::c_int = 0;
    // SAFETY: setpriority takes no pointers. On Linux, PRIO_PROCESS with who = 0 is the calling
    // thread alone (its nice value is per thread).
    match unsafe { setpriority(PRIO_PROCESS, 0, nice) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

#[cfg(not(target_os = "linux"))]
pub fn lower_this_thread(_nice: i32) -> std::io::Result<()> {
    Ok(())
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// The calling thread's nice value, from /proc (field 19 of its stat line).
    fn own_nice() -> i32 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        let after_name = stat.rsplit_once(") ").unwrap().1;
        after_name.split_whitespace().nth(16).unwrap().parse().unwrap()
    }

    #[test]
    fn the_thread_and_the_threads_it_starts_run_lower_and_others_do_not() {
        let before = own_nice();
        let (lowered, inherited) = std::thread::spawn(|| {
            lower_this_thread(INFERENCE_NICE).unwrap();
            (own_nice(), std::thread::spawn(own_nice).join().unwrap())
        })
        .join()
        .unwrap();
        assert_eq!((lowered, inherited), (INFERENCE_NICE, INFERENCE_NICE));
        assert_eq!(own_nice(), before, "the test's own thread is untouched");
    }
}
