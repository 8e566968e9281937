//! Packing buffers kept per thread and reused, so that a layer called
//! again on a batch no larger than before allocates nothing to pack it.
//!
//! Each thread keeps at most one activation buffer per element type and
//! one row-sum buffer, of at most [`KEPT_BYTES`] each: a call needing more
//! does enough arithmetic that one allocation is lost in it, and a thread
//! never holds more than a few MiB it is not using.

use std::cell::RefCell;
use std::thread::LocalKey;

use super::aligned::AlignedVec;

/// Largest buffer a thread keeps for the next call.
pub(crate) const KEPT_BYTES: usize = 4 << 20;

/// An element of packed activations, with its thread's spare buffer.
pub(crate) trait Pooled: Copy + Default + 'static {
    /// This thread's spare buffer of this type.
    fn spare() -> &'static LocalKey<RefCell<Option<AlignedVec<Self>>>>;
}

macro_rules! pooled {
    ($($t:ty => $key:ident),*) => {
        thread_local! {
            $(static $key: RefCell<Option<AlignedVec<$t>>> = const { RefCell::new(None) };)*
        }
        $(impl Pooled for $t {
            fn spare() -> &'static LocalKey<RefCell<Option<AlignedVec<$t>>>> {
                &$key
            }
        })*
    };
}

pooled!(u8 => SPARE_U8, i16 => SPARE_I16);

thread_local! {
    static SPARE_SUMS: RefCell<Vec<i64>> = const { RefCell::new(Vec::new()) };
}

/// `len` zeroed values, in this thread's spare buffer if it has room.
pub(crate) fn zeroed<T: Pooled>(len: usize) -> AlignedVec<T> {
    let spare = T::spare()
        .try_with(|s| s.borrow_mut().take())
        .ok()
        .flatten();
    match spare {
        Some(mut buf) => {
            if buf.refill(len) {
                buf
            } else {
                AlignedVec::new(len)
            }
        }
        None => AlignedVec::new(len),
    }
}

/// Gives `buf` back to this thread for the next call, unless it is larger
/// than [`KEPT_BYTES`] or the thread already keeps a larger one.
pub(crate) fn give_back<T: Pooled>(buf: AlignedVec<T>) {
    if buf.bytes() > KEPT_BYTES {
        return;
    }
    let _ = T::spare().try_with(|s| {
        let mut s = s.borrow_mut();
        if s.as_ref().is_none_or(|kept| kept.bytes() < buf.bytes()) {
            *s = Some(buf);
        }
    });
}

/// `len` zeroed row sums, in this thread's spare vector if it has room.
pub(crate) fn zeroed_sums(len: usize) -> Vec<i64> {
    let mut sums = SPARE_SUMS
        .try_with(|s| std::mem::take(&mut *s.borrow_mut()))
        .unwrap_or_default();
    if sums.capacity() < len {
        return vec![0; len];
    }
    sums.clear();
    sums.resize(len, 0);
    sums
}

/// Gives `sums` back to this thread, as [`give_back`] does.
pub(crate) fn give_back_sums(sums: Vec<i64>) {
    if sums.capacity() * std::mem::size_of::<i64>() > KEPT_BYTES {
        return;
    }
    let _ = SPARE_SUMS.try_with(|s| {
        let mut s = s.borrow_mut();
        if s.capacity() < sums.capacity() {
            *s = sums;
        }
    });
}
