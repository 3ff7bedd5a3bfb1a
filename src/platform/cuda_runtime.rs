//! The few CUDA runtime calls qnet makes itself (free memory, a device's name), looked up in
//! the CUDA runtime that libtorch loaded ([`crate::platform::symbols`]), so nothing links against CUDA
//! here and a CPU-only libtorch simply has none to offer.

use std::ffi::{c_int, c_void, CStr};

use crate::platform::symbols::lookup;

/// The CUDA device current for this thread.
fn current_device() -> Option<c_int> {
    type GetDevice = unsafe extern "C" fn(*mut c_int) -> c_int;
    let function = lookup(c"cudaGetDevice")?;
    let mut device: c_int = 0;
    // SAFETY: cudaGetDevice's documented signature, writing one int; failure is reported by
    // status.
    let status = unsafe {
        let get = std::mem::transmute::<*mut c_void, GetDevice>(function);
        get(&mut device)
    };
    (status == 0).then_some(device)
}

/// Makes CUDA device `index` current for this thread.
fn set_device(index: c_int) -> Option<()> {
    type SetDevice = unsafe extern "C" fn(c_int) -> c_int;
    let function = lookup(c"cudaSetDevice")?;
    // SAFETY: cudaSetDevice's documented signature; it reports failure by status.
    let status = unsafe {
        let set = std::mem::transmute::<*mut c_void, SetDevice>(function);
        set(index)
    };
    (status == 0).then_some(())
}

/// Free memory on CUDA device `index`, in bytes. The thread's current device is the same
/// afterwards as before (cudaMemGetInfo answers for the current device only).
pub fn free_memory(index: usize) -> Option<u64> {
    type MemGetInfo = unsafe extern "C" fn(*mut usize, *mut usize) -> c_int;
    let function = lookup(c"cudaMemGetInfo")?;
    let index = c_int::try_from(index).ok()?;
    let previous = current_device()?;
    set_device(index)?;
    let (mut free, mut total) = (0usize, 0usize);
    // SAFETY: cudaMemGetInfo's documented signature; it reports failure by status.
    let status = unsafe {
        let mem_get_info = std::mem::transmute::<*mut c_void, MemGetInfo>(function);
        mem_get_info(&mut free, &mut total)
    };
    let restored = set_device(previous);
    (status == 0 && restored.is_some()).then_some(free as u64)
}

/// The name of CUDA device `index` (e.g. "NVIDIA H200"), from cudaGetDeviceProperties.
pub fn device_name(index: usize) -> Option<String> {
    type GetProperties = unsafe extern "C" fn(*mut c_void, c_int) -> c_int;
    // CUDA 12 and later export the current layout of the properties as `_v2`.
    let function =
        lookup(c"cudaGetDeviceProperties_v2").or_else(|| lookup(c"cudaGetDeviceProperties"))?;
    // `cudaDeviceProp` opens with `char name[256]` in every CUDA release, while the rest of
    // its layout (about 1 KiB) changes between releases: it is written into a buffer many
    // times that size, aligned for its 8-byte fields, and only the name is read.
    let mut properties = vec![0u64; 2048];
    // SAFETY: the documented signature, a buffer larger than any release's struct; failure
    // is reported by status.
    let status = unsafe {
        let get = std::mem::transmute::<*mut c_void, GetProperties>(function);
        get(properties.as_mut_ptr().cast(), c_int::try_from(index).ok()?)
    };
    if status != 0 {
        return None;
    }
    let bytes: Vec<u8> = properties[..32]
        .iter()
        .flat_map(|w| w.to_ne_bytes())
        .collect();
    let name = CStr::from_bytes_until_nul(&bytes)
        .ok()?
        .to_str()
        .ok()?
        .trim();
    (!name.is_empty()).then(|| name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_usable_gpu_nothing_is_reported() {
        // On a machine with a GPU these answer; on this project's CPU machines (a CUDA build
        // of libtorch, no device) the runtime refuses, and on a CPU-only libtorch it is absent.
        if tch::Cuda::device_count() == 0 {
            assert_eq!(free_memory(0), None);
            assert_eq!(device_name(0), None);
        } else {
            let before = current_device();
            let last = usize::try_from(tch::Cuda::device_count() - 1).unwrap_or(0);
            assert!(free_memory(last).is_some_and(|bytes| bytes > 0));
            assert_eq!(
                current_device(),
                before,
                "the query left another device current"
            );
            assert!(device_name(0).is_some());
        }
    }
}
