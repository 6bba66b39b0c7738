//! The memory allocator every Rapport process runs on.
//!
//! A crate that links this one allocates with mimalloc rather than the system allocator: a
//! whole-tenant re-score spent about 15 % of the machine in glibc's malloc and free. Call
//! [`configure`] first thing in `main`.

use libmimalloc_sys::{mi_option_set, mi_option_t};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_decommits`, by its place in mimalloc's `mi_option_e` (include/mimalloc.h),
/// which the Rust bindings do not name. mimalloc keeps the enum's numbering stable across
/// releases (retired options stay as `deprecated_` placeholders).
const PURGE_DECOMMITS: mi_option_t = 5;

// The bindings name the option after it; a renumbering would move both.
const _: () = assert!(PURGE_DECOMMITS + 1 == libmimalloc_sys::mi_option_large_os_pages);

/// Sets mimalloc to hand freed memory back lazily (`MADV_FREE`), not to unmap it.
///
/// By default mimalloc decommits memory that stayed free for a second (`MADV_DONTNEED`), and
/// touching it again faults in fresh zeroed pages. A re-score frees and allocates a page of
/// rows' worth of buffers many times a second: in `bench-scoring`'s three re-scores of 300,000
/// customers, run with and without this setting, the process took 130,000–140,000 page
/// faults and 7–9 % more CPU without it (2,500–3,300 faults with it). Memory freed lazily goes
/// back to the system when the kernel needs it; until then it still counts in the process's
/// resident size.
pub fn configure() {
    // SAFETY: setting an option has no preconditions; mimalloc reads it at its next purge.
    unsafe { mi_option_set(PURGE_DECOMMITS, 0) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libmimalloc_sys::mi_option_get;

    fn purge_decommits() -> bool {
        // SAFETY: reading an option has no preconditions.
        unsafe { mi_option_get(PURGE_DECOMMITS) != 0 }
    }

    #[test]
    fn configure_turns_decommit_off() {
        // From mimalloc's default (which `MIMALLOC_PURGE_DECOMMITS` may have changed).
        // SAFETY: as in `configure`.
        unsafe { mi_option_set(PURGE_DECOMMITS, 1) };
        assert!(purge_decommits());
        configure();
        assert!(!purge_decommits());
    }
}
