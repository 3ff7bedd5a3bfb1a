//! Memory shared with a child process: an anonymous file (`memfd_create`) that the child
//! inherits and maps too, read and written here through bounds-checked accessors.
//!
//! The two processes take turns (a sequence word written last by one side and read first by
//! the other, with release and acquire ordering): data is only read here after the child has
//! said it is done writing it, and written here only while the child waits. What the child
//! writes is never trusted to be well-formed: it is copied out as plain numbers, and any bit
//! pattern of them is a valid value.

use std::ffi::CStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::AtomicU64;

use anyhow::{bail, Context, Result};

/// A shared memory file, mapped once it has a size.
#[derive(Debug)]
pub struct SharedMemory {
    fd: OwnedFd,
    mapping: Option<(NonNull<u8>, usize)>,
}

// SAFETY: the mapping is plain memory owned by this value; every access goes through the
// methods below, which take `&self`/`&mut self` as a slice of bytes would.
unsafe impl Send for SharedMemory {}

impl SharedMemory {
    /// A new, empty shared memory file; `name` shows in `/proc/PID/fd` for debugging.
    pub fn new(name: &CStr) -> Result<Self> {
        // SAFETY: memfd_create(2) with a NUL-terminated name; the result is checked, then owned.
        let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error()).context("cannot create shared memory");
        }
        Ok(Self {
            // SAFETY: `fd` is a new descriptor nothing else owns.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            mapping: None,
        })
    }

    /// The file, for the child to inherit.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Gives the file `len` bytes (zeroed) and maps them; once only.
    pub fn map(&mut self, len: usize) -> Result<()> {
        if self.mapping.is_some() {
            bail!("shared memory is already mapped");
        }
        if len == 0 || len % 64 != 0 {
            bail!("shared memory of {len} bytes: expected a positive multiple of 64");
        }
        let size = libc::off_t::try_from(len).context("shared memory size")?;
        // SAFETY: ftruncate(2) on a descriptor we own.
        if unsafe { libc::ftruncate(self.fd.as_raw_fd(), size) } != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("cannot size shared memory to {len} bytes"));
        }
        // SAFETY: mmap(2) of `len` bytes of a file of that size, shared, read-write; the
        // result is checked before use and unmapped once, on drop.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                self.fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("cannot map {len} bytes of shared memory"));
        }
        let ptr = NonNull::new(ptr.cast::<u8>()).context("mmap returned NULL")?;
        self.mapping = Some((ptr, len));
        Ok(())
    }

    /// The mapped bytes `offset..offset + len`, checked to lie inside the mapping.
    fn span(&self, offset: usize, len: usize, align: usize) -> NonNull<u8> {
        let (ptr, size) = self
            .mapping
            .expect("shared memory is used before it is mapped");
        let end = offset
            .checked_add(len)
            .expect("shared memory span overflows");
        assert!(
            end <= size && offset % align == 0,
            "shared memory span {offset}..{end} outside 0..{size} or misaligned"
        );
        // SAFETY: `offset <= end <= size`, so the pointer stays inside the mapping.
        unsafe { ptr.add(offset) }
    }

    /// The 8-byte word at `offset` (a multiple of 8), as an atomic both processes use.
    pub fn word(&self, offset: usize) -> &AtomicU64 {
        let ptr = self.span(offset, 8, 8);
        // SAFETY: an aligned, in-bounds u64 of memory that lives as long as `self`; the child
        // accesses it only with whole aligned 8-byte loads and stores.
        unsafe { AtomicU64::from_ptr(ptr.as_ptr().cast::<u64>()) }
    }

    /// Copies `out.len()` values of `T` from `offset` (aligned for `T`).
    pub fn read<T: Plain>(&self, offset: usize, out: &mut [T]) {
        let bytes = std::mem::size_of_val(out);
        let src = self.span(offset, bytes, std::mem::align_of::<T>());
        // SAFETY: in bounds and aligned (checked by `span`); `T` is plain data for which any
        // bytes are a value; the child does not write this span while the caller reads it (the
        // turn-taking the module describes), and the two regions cannot overlap, one being
        // the caller's.
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr().cast::<T>(), out.as_mut_ptr(), out.len());
        }
    }

    /// Copies `values` to `offset` (aligned for `T`).
    pub fn write<T: Plain>(&self, offset: usize, values: &[T]) {
        let bytes = std::mem::size_of_val(values);
        let dst = self.span(offset, bytes, std::mem::align_of::<T>());
        // SAFETY: as in `read`, with the roles of the two sides swapped: the child does not
        // touch this span until the request that follows the write.
        unsafe {
            std::ptr::copy_nonoverlapping(values.as_ptr(), dst.as_ptr().cast::<T>(), values.len());
        }
    }
}

impl Drop for SharedMemory {
    fn drop(&mut self) {
        if let Some((ptr, len)) = self.mapping.take() {
            // SAFETY: the mapping made in `map`, unmapped once; nothing borrows it any more.
            unsafe { libc::munmap(ptr.as_ptr().cast(), len) };
        }
    }
}

/// Plain numbers: every bit pattern of their size is a value, so memory another process
/// wrote can be read as them.
pub trait Plain: Copy + sealed::Sealed {}

mod sealed {
    pub trait Sealed {}
}

macro_rules! plain {
    ($($t:ty),*) => {
        $(
            impl sealed::Sealed for $t {}
            impl Plain for $t {}
        )*
    };
}

plain!(u8, i64, u64, f32, f64);

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    #[test]
    fn both_mappings_of_the_file_see_the_same_bytes() -> Result<()> {
        let mut shm = SharedMemory::new(c"qnet-test")?;
        shm.map(128)?;
        shm.write(64, &[1.5f32, -2.0]);
        shm.word(8).store(7, Ordering::Release);
        // A second mapping of the same file, as the child makes it.
        let path = format!("/proc/self/fd/{}", shm.fd().as_raw_fd());
        let other = std::fs::read(path)?;
        assert_eq!(other.len(), 128);
        assert_eq!(u64::from_le_bytes(other[8..16].try_into()?), 7);
        assert_eq!(f32::from_le_bytes(other[64..68].try_into()?), 1.5);
        let mut back = [0f32; 2];
        shm.read(64, &mut back);
        assert_eq!(back, [1.5, -2.0]);
        Ok(())
    }

    #[test]
    #[should_panic(expected = "outside")]
    fn a_span_past_the_end_is_refused() {
        let mut shm = SharedMemory::new(c"qnet-test").expect("memfd");
        shm.map(64).expect("map");
        let mut out = [0f64; 2];
        shm.read(56, &mut out);
    }
}
