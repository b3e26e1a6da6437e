//! Blocking primitives and channels over a platform of threads (in progress).
